package queue_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/queue"
	"github.com/jobforge/jobforge/internal/redistest"
	"github.com/jobforge/jobforge/internal/store"
	"github.com/jobforge/jobforge/jobs"
	"github.com/jobforge/jobforge/jobs/builtin"
)

// An idle worker holds its queue checks for up to its poll interval, yet
// picks up a new job at once (the store wakes it), a due scheduled job at
// once (asynq's forwarder wakes it), and shuts down without waiting out a
// held check.
func TestIdleWorkerWakesUpForNewJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, err := queue.Connect(ctx, redistest.NewDB(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	st := queue.NewStore(rdb, testLogger(t))
	reg, err := jobs.NewRegistry(builtin.Types()...)
	require.NoError(t, err)

	const poll = time.Minute // far longer than any wait below
	w := queue.NewWorker(rdb, reg, queue.WorkerOptions{
		Pools:                []queue.Pool{{Name: "io", Queues: map[string]int{"default": 1, "low": 1}, Concurrency: 2}},
		PollInterval:         poll,
		DelayedCheckInterval: 100 * time.Millisecond,
		ShutdownTimeout:      5 * time.Second,
		Retention:            time.Hour,
		Logger:               testLogger(t),
	})
	require.NoError(t, w.Start())
	time.Sleep(200 * time.Millisecond) // both queues found empty: the check is held

	for _, q := range []string{"default", "low"} {
		rec, _, err := st.Create(ctx, store.NewJob{Tenant: "t", Type: "simulate", Queue: q, Payload: json.RawMessage(`{}`), MaxAttempts: 1, Timeout: time.Minute})
		require.NoError(t, err)
		redistest.Eventually(t, 10*time.Second, func() bool {
			r, err := st.Get(ctx, "t", rec.ID)
			return err == nil && r.State == store.StateSucceeded
		}, "job on queue %s ran without waiting for the poll interval", q)
	}

	rec, _, err := st.Create(ctx, store.NewJob{Tenant: "t", Type: "simulate", Queue: "default", Payload: json.RawMessage(`{}`),
		MaxAttempts: 1, Timeout: time.Minute, ScheduleTime: time.Now().Add(300 * time.Millisecond)})
	require.NoError(t, err)
	redistest.Eventually(t, 10*time.Second, func() bool {
		r, err := st.Get(ctx, "t", rec.ID)
		return err == nil && r.State == store.StateSucceeded
	}, "scheduled job ran without waiting for the poll interval")

	done := make(chan struct{})
	go func() { w.Shutdown(); close(done) }()
	select {
	case <-done:
	case <-time.After(poll / 2):
		t.Fatal("Shutdown waited for a held queue check")
	}
}
