package queue

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/redistest"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err)
	return v
}

func TestSpecPeriods(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, cron, tz string
		anchor, now    string
		window         time.Duration
		wantLatest     string // "" = no period to create
		wantNext       string
	}{
		{
			name: "cron in a time zone (winter)", cron: "0 9 * * *", tz: "Europe/Berlin",
			anchor: "2025-01-01T00:00:00Z", now: "2025-01-15T08:00:00.4Z", window: 5 * time.Minute,
			wantLatest: "2025-01-15T08:00:00Z", wantNext: "2025-01-16T08:00:00Z",
		},
		{
			name: "cron in a time zone (summer)", cron: "0 9 * * *", tz: "Europe/Berlin",
			anchor: "2025-07-01T00:00:00Z", now: "2025-07-15T07:00:01Z", window: 5 * time.Minute,
			wantLatest: "2025-07-15T07:00:00Z", wantNext: "2025-07-16T07:00:00Z",
		},
		{
			name: "missed period older than the catch-up window is skipped", cron: "0 9 * * *", tz: "Europe/Berlin",
			anchor: "2025-01-01T00:00:00Z", now: "2025-01-15T08:10:00Z", window: 5 * time.Minute,
			wantNext: "2025-01-16T08:00:00Z",
		},
		{
			name: "within a longer window only the latest missed period", cron: "*/5 * * * *",
			anchor: "2025-01-01T00:00:00Z", now: "2025-01-15T08:17:00Z", window: time.Hour,
			wantLatest: "2025-01-15T08:15:00Z", wantNext: "2025-01-15T08:20:00Z",
		},
		{
			name: "no period before the schedule existed", cron: "*/5 * * * *",
			anchor: "2025-01-15T08:15:30Z", now: "2025-01-15T08:17:00Z", window: time.Hour,
			wantNext: "2025-01-15T08:20:00Z",
		},
		{
			name: "descriptor", cron: "@hourly", tz: "Asia/Kolkata",
			anchor: "2025-01-01T00:00:00Z", now: "2025-01-15T08:31:00Z", window: 5 * time.Minute,
			wantLatest: "2025-01-15T08:30:00Z", wantNext: "2025-01-15T09:30:00Z",
		},
		{
			name: "@every counts from the schedule's creation", cron: "@every 10s",
			anchor: "2025-01-15T12:00:03.7Z", now: "2025-01-15T12:00:35Z", window: 5 * time.Minute,
			wantLatest: "2025-01-15T12:00:33Z", wantNext: "2025-01-15T12:00:43Z",
		},
		{
			name: "@every before its first period", cron: "@every 10s",
			anchor: "2025-01-15T12:00:03.7Z", now: "2025-01-15T12:00:12.9Z", window: 5 * time.Minute,
			wantNext: "2025-01-15T12:00:13Z",
		},
		{
			name: "@every after a long outage: one period, the latest", cron: "@every 10s",
			anchor: "2025-01-15T12:00:00Z", now: "2025-01-15T14:00:05Z", window: 5 * time.Minute,
			wantLatest: "2025-01-15T14:00:00Z", wantNext: "2025-01-15T14:00:10Z",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec, err := ParseSpec(tt.cron, tt.tz)
			require.NoError(t, err)
			anchor, now := mustTime(t, tt.anchor), mustTime(t, tt.now)
			p, ok := spec.latest(anchor, now, tt.window)
			if tt.wantLatest == "" {
				require.False(t, ok, "latest = %s", p)
			} else {
				require.True(t, ok)
				require.Equal(t, mustTime(t, tt.wantLatest), p)
			}
			require.Equal(t, mustTime(t, tt.wantNext), spec.next(anchor, now))
		})
	}
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

func scheduleTemplate(tenant string) NewJob {
	return NewJob{Tenant: tenant, Type: "simulate", Queue: "default", Payload: []byte(`{}`), MaxAttempts: 1, Timeout: time.Minute}
}

// After an outage, a scheduler creates the most recent missed period only,
// once, however often it ticks.
func TestSchedulerCatchUpIsOnePeriod(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, clock := internalStore(t)
	*clock() = mustTime(t, "2025-01-15T12:00:00.5Z")
	sc, err := st.CreateSchedule(ctx, Schedule{Tenant: "t1", Cron: "@every 10s", Job: scheduleTemplate("t1")})
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
	require.NoError(t, st.rdb.HSet(ctx, jobKey(ids[0]), fState, string(StateRunning)).Err())
	require.NoError(t, st.rdb.ZRem(ctx, waitingKey("t1"), ids[0]).Err())
	NewScheduler(st, SchedulerOptions{}).tick(ctx)
	require.Zero(t, st.rdb.ZCard(ctx, waitingKey("t1")).Val())

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
	require.Equal(t, map[string]string{ScheduleLabel: sc.ID}, rec.Labels)
	require.Equal(t, StatePending, rec.State)
}

// A job's record and task are written in one step; a replica that sees the
// period again writes neither a second job nor a second task.
func TestSchedulerCreatesJobAndTaskOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, clock := internalStore(t)
	*clock() = mustTime(t, "2025-01-15T12:00:00.5Z")
	sc, err := st.CreateSchedule(ctx, Schedule{Tenant: "t1", Cron: "@every 10s", Job: scheduleTemplate("t1")})
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
