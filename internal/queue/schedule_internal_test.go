package queue

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/redistest"
	"github.com/jobforge/jobforge/internal/store"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err)
	return v
}

func internalStore(t *testing.T) (*Store, func() *time.Time) {
	t.Helper()
	rdb, err := Connect(context.Background(), redistest.NewDB(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	st := NewStore(rdb, slog.New(slog.NewTextHandler(io.Discard, nil)))
	clock := new(time.Time)
	*clock = time.Now()
	st.now = func() time.Time { return *clock }
	return st, func() *time.Time { return clock }
}

func scheduleTemplate(tenant string) store.NewJob {
	return store.NewJob{Tenant: tenant, Type: "simulate", Queue: "default", Payload: []byte(`{}`), MaxAttempts: 1, Timeout: time.Minute}
}

// After an outage, a scheduler creates the most recent missed period only,
// once, however often it ticks.
func TestSchedulerCatchUpIsOnePeriod(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, clock := internalStore(t)
	*clock() = mustTime(t, "2025-01-15T12:00:00.5Z")
	sc, err := st.CreateSchedule(ctx, store.Schedule{Tenant: "t1", Cron: "@every 10s", Job: scheduleTemplate("t1")})
	require.NoError(t, err)

	// Down for an hour.
	*clock() = mustTime(t, "2025-01-15T13:00:04Z")
	s := NewScheduler(st, SchedulerOptions{})
	for range 3 {
		s.tick(ctx)
	}
	ids, err := st.ScheduleJobIDs(ctx, "t1", sc.ID)
	require.NoError(t, err)
	require.Equal(t, []string{ScheduleJobID(sc.ID, mustTime(t, "2025-01-15T13:00:00Z"))}, ids)

	// The job starts; a replica that sees the period later leaves it be
	// (no second job, no new entry in the tenant's waiting set).
	require.NoError(t, st.rdb.HSet(ctx, jobKey("default", ids[0]), fState, string(store.StateRunning)).Err())
	require.NoError(t, st.rdb.ZRem(ctx, waitingKey("default", "t1"), ids[0]).Err())
	NewScheduler(st, SchedulerOptions{}).tick(ctx)
	require.Zero(t, st.rdb.ZCard(ctx, waitingKey("default", "t1")).Val())

	// The next period.
	*clock() = mustTime(t, "2025-01-15T13:00:10.2Z")
	require.Equal(t, time.Second, s.tick(ctx), "sleeps at most Tick") // the clock is frozen
	slow := NewScheduler(st, SchedulerOptions{Tick: time.Minute})
	require.Equal(t, 9800*time.Millisecond, slow.tick(ctx), "wakes at the next period start")
	ids, err = st.ScheduleJobIDs(ctx, "t1", sc.ID)
	require.NoError(t, err)
	require.Len(t, ids, 2)
	rec, err := st.Get(ctx, "t1", ids[1])
	require.NoError(t, err)
	require.Equal(t, map[string]string{store.ScheduleLabel: sc.ID}, rec.Labels)
	require.Equal(t, store.StatePending, rec.State)
}

// A job's record and task are written in one step; a replica that sees the
// period again writes neither a second job nor a second task.
func TestSchedulerCreatesJobAndTaskOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, clock := internalStore(t)
	*clock() = mustTime(t, "2025-01-15T12:00:00.5Z")
	sc, err := st.CreateSchedule(ctx, store.Schedule{Tenant: "t1", Cron: "@every 10s", Job: scheduleTemplate("t1")})
	require.NoError(t, err)
	*clock() = mustTime(t, "2025-01-15T12:00:10.1Z")
	NewScheduler(st, SchedulerOptions{}).tick(ctx)
	id := ScheduleJobID(sc.ID, mustTime(t, "2025-01-15T12:00:10Z"))
	_, err = st.inspector.GetTaskInfo("default", id)
	require.NoError(t, err)

	NewScheduler(st, SchedulerOptions{}).tick(ctx)
	pending, err := st.inspector.ListPendingTasks("default")
	require.NoError(t, err)
	require.Len(t, pending, 1, "one task for the period")
	ids, err := st.ScheduleJobIDs(ctx, "t1", sc.ID)
	require.NoError(t, err)
	require.Equal(t, []string{id}, ids)
}

// A schedule's retry policy is stored in the policy's text form, and
// schedules stored with the former object form still read.
func TestScheduleRetryPolicyForms(t *testing.T) {
	t.Parallel()
	want := store.RetryPolicy{Initial: 1500 * time.Millisecond, Max: time.Minute, Multiplier: 1.5, Jitter: 0.1}
	sc := &store.Schedule{ID: "s1", Tenant: "t1", Cron: "@hourly", TimeZone: "UTC", Job: scheduleTemplate("t1")}
	sc.Job.RetryPolicy = want
	b, err := encodeSchedule(sc)
	require.NoError(t, err)
	require.Contains(t, string(b), `"retry_policy":"1500,60000,1.5,0.1"`)

	tests := []struct{ name, raw string }{
		{"text form", string(b)},
		{"former object form", `{"id":"s1","tenant":"t1","cron":"@hourly","time_zone":"UTC","type":"simulate","queue":"default",` +
			`"payload":{},"max_attempts":1,"timeout_ms":60000,` +
			`"retry_policy":{"initial_ms":1500,"max_ms":60000,"multiplier":1.5,"jitter":0.1}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := decodeSchedule(tt.raw)
			require.NoError(t, err)
			require.Equal(t, want, got.Job.RetryPolicy)
		})
	}
}
