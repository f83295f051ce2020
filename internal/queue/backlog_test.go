package queue_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/queue"
	"github.com/jobforge/jobforge/internal/redistest"
	"github.com/jobforge/jobforge/internal/store"
	"github.com/jobforge/jobforge/jobs"
	"github.com/jobforge/jobforge/jobs/builtin"
)

// TestBacklog checks the numbers the worker autoscaler reads: exact
// pending and running counts per queue, and a paused queue's pending jobs
// left out of its runnable count while its running ones stay in.
func TestBacklog(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	create := func(q string, millis int) {
		t.Helper()
		_, _, err := b.store.Create(ctx, store.NewJob{
			Tenant: "t", Type: "simulate", Queue: q, Payload: []byte(`{"duration_millis":` + strconv.Itoa(millis) + `}`),
			MaxAttempts: 1, Timeout: time.Minute,
		})
		require.NoError(t, err)
	}
	queues := []string{"critical", "default", "low"}
	loads, err := queue.Backlog(ctx, b.rdb, queues)
	require.NoError(t, err)
	require.Equal(t, []queue.QueueLoad{{Queue: "critical"}, {Queue: "default"}, {Queue: "low"}}, loads,
		"queues without jobs report zeros")

	// Two slots, both taken by long jobs: one of default, one of low.
	reg, err := jobs.NewRegistry(builtin.Types()...)
	require.NoError(t, err)
	w := queue.NewWorker(b.rdb, reg, queue.WorkerOptions{
		Pools:           []queue.Pool{{Name: "io", Queues: map[string]int{"critical": 1, "default": 1, "low": 1}, Concurrency: 2}},
		PollInterval:    5 * time.Millisecond,
		ShutdownTimeout: time.Second,
		Logger:          testLogger(t),
	})
	require.NoError(t, w.Start())
	t.Cleanup(w.Shutdown)
	create("default", 60_000)
	create("low", 60_000)
	redistest.Eventually(t, 10*time.Second, func() bool {
		l, err := queue.Backlog(ctx, b.rdb, queues)
		return err == nil && l[1].Running == 1 && l[2].Running == 1
	}, "the two long jobs did not start")

	// The worker is full: these wait. low is paused.
	for range 3 {
		create("default", 0)
	}
	for range 4 {
		create("low", 0)
	}
	require.NoError(t, b.store.PauseQueue(ctx, "low"))

	loads, err = queue.Backlog(ctx, b.rdb, queues)
	require.NoError(t, err)
	require.Equal(t, []queue.QueueLoad{
		{Queue: "critical"},
		{Queue: "default", Pending: 3, Running: 1},
		{Queue: "low", Pending: 4, Running: 1, Paused: true},
	}, loads)
	runnable := []int64{0, 4, 1} // low's pending jobs may not run, its running one counts
	for i, l := range loads {
		require.Equal(t, runnable[i], l.Runnable(), l.Queue)
	}

	require.NoError(t, b.store.ResumeQueue(ctx, "low"))
	loads, err = queue.Backlog(ctx, b.rdb, []string{"low"})
	require.NoError(t, err)
	require.Equal(t, int64(5), loads[0].Runnable(), "a resumed queue's pending jobs count again")
}
