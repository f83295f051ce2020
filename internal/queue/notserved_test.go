package queue_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/queue"
	"github.com/jobforge/jobforge/internal/redistest"
	"github.com/jobforge/jobforge/internal/store"
	"github.com/jobforge/jobforge/jobs"
	"github.com/jobforge/jobforge/jobs/builtin"
)

// A worker that takes a task of a type it does not run hands it back to
// its queue, without starting an attempt, for a worker that runs it: two
// workers with different types can share a queue.
func TestTaskOfAnotherWorkersTypeIsHandedBack(t *testing.T) {
	t.Parallel()
	b := setup(t)
	start := func(types ...*jobs.Type) {
		reg, err := jobs.NewRegistry(types...)
		require.NoError(t, err)
		w := queue.NewWorker(b.rdb, reg, queue.WorkerOptions{
			Pools:        []queue.Pool{{Name: "io", Queues: map[string]int{"shared": 1}, Concurrency: 4}},
			PollInterval: 5 * time.Millisecond, DelayedCheckInterval: 50 * time.Millisecond,
			ShutdownTimeout: 2 * time.Second, Retention: time.Hour, Logger: testLogger(t),
		})
		require.NoError(t, w.Start())
		t.Cleanup(w.Shutdown)
	}
	start(builtin.Report) // does not run simulate: it takes tasks and hands them back
	ctx := context.Background()
	var ids []string
	for range 5 {
		rec, _, err := b.store.Create(ctx, store.NewJob{Tenant: "t", Type: "simulate", Queue: "shared",
			Payload: json.RawMessage(`{}`), MaxAttempts: 1, Timeout: time.Minute})
		require.NoError(t, err)
		ids = append(ids, rec.ID)
	}
	inspector := asynq.NewInspectorFromRedisClient(b.rdb)
	redistest.Eventually(t, 10*time.Second, func() bool {
		for _, id := range ids {
			if info, err := inspector.GetTaskInfo("shared", id); err != nil || info.Retried == 0 {
				return false
			}
		}
		return true
	}, "the worker that does not run simulate took every task and handed it back")
	for _, id := range ids {
		rec, err := b.store.Get(ctx, "t", id)
		require.NoError(t, err)
		require.Equal(t, store.StatePending, rec.State, "a worker that does not run the type does not fail the job")
	}
	start(builtin.Simulate)
	for _, id := range ids {
		rec := b.waitState(t, id, store.StateSucceeded, 30*time.Second)
		require.Equal(t, 1, rec.Attempts, "hand-backs start no attempt")
	}
}
