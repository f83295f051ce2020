package queue_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/queue"
	"github.com/jobforge/jobforge/internal/redistest"
	"github.com/jobforge/jobforge/internal/store"
)

func TestScheduleCRUD(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	tmpl := store.NewJob{Type: "simulate", Queue: "default", Payload: []byte(`{"result":1}`), MaxAttempts: 2,
		Timeout: time.Minute, Labels: map[string]string{"team": "data"},
		RetryPolicy: store.RetryPolicy{Initial: time.Second, Multiplier: 1.5}}
	created, err := b.store.CreateSchedule(ctx, store.Schedule{Tenant: "t1", Cron: "0 9 * * 1-5", TimeZone: "Europe/Berlin",
		Description: "weekday report", Job: tmpl, Delay: 3 * time.Second})
	require.NoError(t, err)
	require.NotEmpty(t, created.ID)
	require.WithinDuration(t, time.Now(), created.CreateTime, 5*time.Second)
	next := created.NextRun(time.Now())
	require.True(t, next.After(time.Now()))
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	require.Equal(t, 9, next.In(berlin).Hour())

	other, err := b.store.CreateSchedule(ctx, store.Schedule{Tenant: "t2", Cron: "@hourly", Job: tmpl})
	require.NoError(t, err)
	require.Equal(t, "UTC", other.TimeZone, "default time zone")

	got, err := b.store.GetSchedule(ctx, "t1", created.ID)
	require.NoError(t, err)
	require.Equal(t, created.Cron, got.Cron)
	require.Equal(t, "Europe/Berlin", got.TimeZone)
	require.Equal(t, "weekday report", got.Description)
	require.Equal(t, 3*time.Second, got.Delay)
	require.True(t, created.CreateTime.Equal(got.CreateTime))
	require.Equal(t, tmpl.Type, got.Job.Type)
	require.Equal(t, tmpl.Queue, got.Job.Queue)
	require.JSONEq(t, string(tmpl.Payload), string(got.Job.Payload))
	require.Equal(t, tmpl.Labels, got.Job.Labels)
	require.Equal(t, tmpl.MaxAttempts, got.Job.MaxAttempts)
	require.Equal(t, tmpl.Timeout, got.Job.Timeout)
	require.Equal(t, tmpl.RetryPolicy, got.Job.RetryPolicy)
	require.Equal(t, next, got.NextRun(time.Now()))

	_, err = b.store.GetSchedule(ctx, "t2", created.ID)
	require.ErrorIs(t, err, store.ErrScheduleNotFound, "another tenant's schedule is invisible")

	list, err := b.store.ListSchedules(ctx, "t1")
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, created.ID, list[0].ID)

	require.ErrorIs(t, b.store.DeleteSchedule(ctx, "t2", created.ID), store.ErrScheduleNotFound)
	require.NoError(t, b.store.DeleteSchedule(ctx, "t1", created.ID))
	require.ErrorIs(t, b.store.DeleteSchedule(ctx, "t1", created.ID), store.ErrScheduleNotFound)
	_, err = b.store.GetSchedule(ctx, "t1", created.ID)
	require.ErrorIs(t, err, store.ErrScheduleNotFound)
	list, err = b.store.ListSchedules(ctx, "t2")
	require.NoError(t, err)
	require.Len(t, list, 1)
}

// Two scheduler replicas (each with its own Redis connection) create exactly
// one job per period, and none for periods after the schedule is deleted.
func TestSchedulerReplicasCreateOneJobPerPeriod(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	url := redistest.NewDB(t)
	var stores []*queue.Store
	for range 3 {
		rdb, err := queue.Connect(ctx, url)
		require.NoError(t, err)
		t.Cleanup(func() { _ = rdb.Close() })
		stores = append(stores, queue.NewStore(rdb, testLogger(t)))
	}
	var wg sync.WaitGroup
	for _, st := range stores[1:] {
		s := queue.NewScheduler(st, queue.SchedulerOptions{Logger: testLogger(t)})
		wg.Add(1)
		go func() { defer wg.Done(); require.NoError(t, s.Run(ctx)) }()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })

	st := stores[0]
	sc, err := st.CreateSchedule(ctx, store.Schedule{Tenant: "t1", Cron: "@every 1s",
		Job: store.NewJob{Type: "simulate", Queue: "default", Payload: []byte(`{}`), MaxAttempts: 1, Timeout: time.Minute}})
	require.NoError(t, err)
	ids := func() []string {
		ids, err := st.ScheduleJobIDs(ctx, "t1", sc.ID)
		require.NoError(t, err)
		return ids
	}
	redistest.Eventually(t, 15*time.Second, func() bool { return len(ids()) >= 4 }, "4 periods of the schedule")
	require.NoError(t, st.DeleteSchedule(ctx, "t1", sc.ID))
	deleted := time.Now()
	// Two more periods pass without the schedule.
	redistest.Eventually(t, 5*time.Second, func() bool { return time.Since(deleted) > 2500*time.Millisecond }, "two periods after delete")

	got := ids()
	periods := periodsOf(t, sc, got, deleted)
	t.Logf("%d jobs for periods %v", len(got), periods)
	require.Len(t, periods, len(got), "one job per period")
	for i := 1; i < len(periods); i++ {
		require.Equal(t, time.Second, periods[i].Sub(periods[i-1]), "no period skipped")
	}
	require.False(t, periods[len(periods)-1].After(deleted), "no job for a period after the delete")
}

// periodsOf maps each job id of an "@every 1s" schedule to its period,
// failing for an id that belongs to no period.
func periodsOf(t *testing.T, sc *store.Schedule, ids []string, until time.Time) []time.Time {
	t.Helper()
	byID := map[string]time.Time{}
	for p := sc.CreateTime.Truncate(time.Second).Add(time.Second); !p.After(until.Add(10 * time.Second)); p = p.Add(time.Second) {
		byID[queue.ScheduleJobID(sc.ID, p)] = p
	}
	var periods []time.Time
	seen := map[time.Time]bool{}
	for _, id := range ids {
		p, ok := byID[id]
		require.True(t, ok, "job %s belongs to no period of the schedule", id)
		require.False(t, seen[p], "two jobs for period %s", p)
		seen[p] = true
		periods = append(periods, p)
	}
	slices.SortFunc(periods, time.Time.Compare)
	return periods
}

func TestQueuesPauseResumeAndWorkers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)

	qs, err := b.store.Queues(ctx, []string{"cpu", "default", "never-used"})
	require.NoError(t, err)
	require.Equal(t, []store.QueueInfo{{Name: "cpu"}, {Name: "default"}, {Name: "never-used"}}, qs, "queues nobody used report zeros")

	// Pausing and resuming is idempotent, also for a queue asynq never saw.
	for _, q := range []string{"default", "never-used"} {
		require.NoError(t, b.store.PauseQueue(ctx, q))
		require.NoError(t, b.store.PauseQueue(ctx, q))
		qs, err := b.store.Queues(ctx, []string{q})
		require.NoError(t, err)
		require.True(t, qs[0].Paused, q)
	}
	_, _, err = b.store.Create(ctx, store.NewJob{Tenant: "t1", Type: "simulate", Queue: "default", Payload: []byte(`{}`), MaxAttempts: 1, Timeout: time.Minute})
	require.NoError(t, err)
	b.startWorker(t, time.Hour)
	qs, err = b.store.Queues(ctx, []string{"default"})
	require.NoError(t, err)
	require.True(t, qs[0].Paused)
	require.Equal(t, 1, qs[0].Pending, "a paused queue keeps its jobs")

	for _, q := range []string{"default", "never-used"} {
		require.NoError(t, b.store.ResumeQueue(ctx, q))
		require.NoError(t, b.store.ResumeQueue(ctx, q))
	}
	redistest.Eventually(t, 10*time.Second, func() bool {
		qs, err := b.store.Queues(ctx, []string{"default"})
		require.NoError(t, err)
		return !qs[0].Paused && qs[0].Pending == 0 && qs[0].ProcessedToday == 1
	}, "resumed queue runs its job")

	// Each pool appears once its asynq server has written its first
	// heartbeat, which asynq does on a goroutine of its own after Start
	// returns: wait for both entries rather than read the list once.
	var ws []store.WorkerInfo
	redistest.Eventually(t, 10*time.Second, func() bool {
		var err error
		ws, err = b.store.Workers(ctx)
		require.NoError(t, err)
		require.LessOrEqual(t, len(ws), 2, "one entry per pool: %+v", ws)
		return len(ws) == 2
	}, "both pools listed")
	var concurrency []int
	for _, w := range ws {
		require.NotEmpty(t, w.ID)
		require.NotEmpty(t, w.Host)
		require.NotZero(t, w.PID)
		require.Equal(t, "active", w.Status)
		require.WithinDuration(t, time.Now(), w.Started, time.Minute)
		concurrency = append(concurrency, w.Concurrency)
	}
	require.ElementsMatch(t, []int{4, 1}, concurrency)
}
