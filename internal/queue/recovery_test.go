package queue

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/redistest"
	"github.com/jobforge/jobforge/internal/store"
	"github.com/jobforge/jobforge/jobs"
	"github.com/jobforge/jobforge/jobs/builtin"
)

// deadWorkerHolds puts a job in the state a worker leaves behind when it is
// killed: asynq's task taken from pending into active with a lease that
// nobody extends any more, and (when started) the record RUNNING on that
// worker, which never heartbeats again. This is exactly what asynq's
// dequeue script and startScript write; fault tests do the same with real
// processes and kill -9 (test/faults).
func deadWorkerHolds(t *testing.T, rdb redis.UniversalClient, rec *store.Record, started bool) {
	t.Helper()
	ctx := context.Background()
	q, id := rec.Queue, rec.ID
	staleLease := time.Now().Add(asynqLeaseDuration - 10*time.Second) // stale, and past the give-up margin
	pipe := rdb.TxPipeline()
	pipe.LRem(ctx, asynqPendingKey(q), 0, id)
	pipe.LPush(ctx, asynqActiveKey(q), id)
	pipe.HSet(ctx, asynqTaskKey(q, id), "state", "active")
	pipe.HDel(ctx, asynqTaskKey(q, id), "pending_since")
	pipe.ZAdd(ctx, asynqLeaseKey(q), redis.Z{Score: asynqLeaseScore(staleLease), Member: id})
	_, err := pipe.Exec(ctx)
	require.NoError(t, err)
	if started {
		_, err := startScript.Run(ctx, rdb, jobKeys(q, id), micros(time.Now()), "dead-host:42:abcdef").Slice()
		require.NoError(t, err)
	}
}

// recoveryWorker runs a worker with a fast heartbeat that counts the
// attempts its simulate handler starts.
func recoveryWorker(t *testing.T, rdb redis.UniversalClient, maxLost int) *atomic.Int64 {
	t.Helper()
	var runs atomic.Int64
	sim := jobs.Define(jobs.Spec[builtin.SimulatePayload, builtin.SimulateResult]{
		Name: "simulate", Queue: "default", Timeout: time.Minute, MaxAttempts: 1,
		Handle: func(_ context.Context, job *jobs.Job, _ builtin.SimulatePayload) (builtin.SimulateResult, error) {
			runs.Add(1)
			return builtin.SimulateResult{Attempt: job.Attempt}, nil
		},
	})
	reg, err := jobs.NewRegistry(sim)
	require.NoError(t, err)
	w := NewWorker(rdb, reg, WorkerOptions{
		Pools:                []Pool{{Name: "io", Queues: map[string]int{"default": 1}, Concurrency: 2}},
		PollInterval:         10 * time.Millisecond,
		DelayedCheckInterval: 50 * time.Millisecond,
		ShutdownTimeout:      time.Second,
		Retention:            time.Hour,
		HeartbeatInterval:    50 * time.Millisecond,
		LostAfter:            200 * time.Millisecond,
		MaxLostAttempts:      maxLost,
		Logger:               slogDiscard(),
	})
	require.NoError(t, w.Start())
	t.Cleanup(w.Shutdown)
	return &runs
}

func TestRecoveryOfLostWorker(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		started    bool        // the dead worker had started the attempt
		alive      bool        // the holder still heartbeats (it gave the attempt up)
		priorLost  int         // attempts the job lost before
		finished   store.State // the dead worker recorded this outcome but never acknowledged the task
		wantState  store.State // after recovery
		wantRuns   int64       // handler runs on the live worker
		wantLost   int         // lost attempts in the record
		wantReason string      // of the last error
	}{
		{name: "running attempt is lost and runs again", started: true, wantState: store.StateSucceeded, wantRuns: 1, wantLost: 1},
		{name: "taken but not started runs", wantState: store.StateSucceeded, wantRuns: 1},
		{name: "attempt given up by a live worker runs again, not counted as lost", started: true, alive: true, wantState: store.StateSucceeded, wantRuns: 1},
		{name: "third lost attempt fails the job", started: true, priorLost: 2, wantState: store.StateFailed, wantLost: 3, wantReason: store.ReasonWorkerLost},
		{name: "finished but unacknowledged is not run again", started: true, finished: store.StateSucceeded, wantState: store.StateSucceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rdb := connectDB(t)
			st := NewStore(rdb, slogDiscard())
			// maxAttempts 1: a crash must not use up the only attempt.
			rec, _, err := st.Create(ctx, store.NewJob{Tenant: "t", Type: "simulate", Queue: "default", Payload: json.RawMessage(`{}`), MaxAttempts: 1, Timeout: time.Minute})
			require.NoError(t, err)
			deadWorkerHolds(t, rdb, rec, tt.started)
			if tt.alive {
				require.NoError(t, rdb.ZAdd(ctx, heartbeatsKey, redis.Z{Score: float64(time.Now().Add(time.Hour).UnixMilli()), Member: "dead-host:42:abcdef"}).Err())
			}
			if tt.priorLost > 0 {
				require.NoError(t, rdb.HSet(ctx, jobKey(rec.Queue, rec.ID), fLost, tt.priorLost).Err())
			}
			if tt.finished != "" {
				got, err := finishScript.Run(ctx, rdb, jobKeys(rec.Queue, rec.ID), string(tt.finished), micros(time.Now()), 3600,
					micros(time.Now().Add(time.Hour)), `{"ok":true}`, "", "dead-host:42:abcdef").Text()
				require.NoError(t, err)
				require.Equal(t, string(tt.finished), got)
			}

			runs := recoveryWorker(t, rdb, 3)
			var last *store.Record
			redistest.Eventually(t, 10*time.Second, func() bool {
				last, err = st.Get(ctx, "t", rec.ID)
				require.NoError(t, err)
				active, err := rdb.LLen(ctx, asynqActiveKey("default")).Result()
				require.NoError(t, err)
				return last.State == tt.wantState && active == 0
			}, "job reaches %s with its task out of asynq's active list", tt.wantState)
			require.Equal(t, tt.wantRuns, runs.Load(), "handler runs on the live worker")
			require.Equal(t, tt.wantLost, last.LostAttempts)
			require.LessOrEqual(t, last.Attempts, last.MaxAttempts, "a lost attempt is not counted")
			if tt.alive {
				require.NotEmpty(t, last.AttemptErrors)
				require.Contains(t, last.AttemptErrors[len(last.AttemptErrors)-1].Message, "attempt abandoned: worker dead-host:42:abcdef could not record it")
				require.Equal(t, 1, last.Attempts)
			}
			if tt.wantLost > tt.priorLost {
				require.NotEmpty(t, last.AttemptErrors)
				lostErr := last.AttemptErrors[len(last.AttemptErrors)-1]
				require.True(t, lostErr.Lost)
				require.Contains(t, lostErr.Message, "worker lost (dead-host:42:abcdef stopped heartbeating)")
				require.Equal(t, tt.wantReason, lostErr.Reason)
			}
			if tt.wantState == store.StateFailed {
				require.False(t, last.ExpireTime.IsZero(), "a failed record expires after retention")
				n, err := rdb.Exists(ctx, asynqTaskKey("default", rec.ID)).Result()
				require.NoError(t, err)
				require.Zero(t, n, "the failed job's task is removed")
			}
		})
	}
}

// A live worker whose attempt outlasts LostAfter keeps its job: its
// heartbeat extends the lease, so recovery leaves it alone.
func TestRecoveryLeavesLiveWorkersAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := connectDB(t)
	st := NewStore(rdb, slogDiscard())
	release := make(chan struct{})
	var runs atomic.Int64
	slow := jobs.Define(jobs.Spec[struct{}, struct{}]{
		Name: "slow", Queue: "default", Timeout: time.Minute, MaxAttempts: 1,
		Handle: func(ctx context.Context, _ *jobs.Job, _ struct{}) (struct{}, error) {
			runs.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
			}
			return struct{}{}, nil
		},
	})
	reg, err := jobs.NewRegistry(slow)
	require.NoError(t, err)
	w := NewWorker(rdb, reg, WorkerOptions{
		Pools:        []Pool{{Name: "io", Queues: map[string]int{"default": 1}, Concurrency: 2}},
		PollInterval: 10 * time.Millisecond, ShutdownTimeout: time.Second, Retention: time.Hour,
		HeartbeatInterval: 50 * time.Millisecond, LostAfter: 200 * time.Millisecond, Logger: slogDiscard(),
	})
	require.NoError(t, w.Start())
	t.Cleanup(w.Shutdown)
	rec, _, err := st.Create(ctx, store.NewJob{Tenant: "t", Type: "slow", Queue: "default", Payload: json.RawMessage(`{}`), MaxAttempts: 1, Timeout: time.Minute})
	require.NoError(t, err)

	// Several recovery rounds, well past LostAfter, while the attempt runs.
	redistest.Eventually(t, 10*time.Second, func() bool {
		return runs.Load() == 1 && w.beats.rounds.Load() >= 20
	}, "the recovery loop runs while the attempt does")
	close(release)
	redistest.Eventually(t, 10*time.Second, func() bool {
		got, err := st.Get(ctx, "t", rec.ID)
		require.NoError(t, err)
		return got.State == store.StateSucceeded
	}, "job succeeds")
	got, err := st.Get(ctx, "t", rec.ID)
	require.NoError(t, err)
	require.Equal(t, int64(1), runs.Load(), "one run")
	require.Zero(t, got.LostAttempts)
	require.Equal(t, 1, got.Attempts)
	require.Empty(t, got.AttemptErrors)
}

// On shutdown, an attempt that outlasts the shutdown timeout is put back in
// its queue and its attempt given back: a job with one attempt still
// succeeds on the next worker.
func TestShutdownGivesBackInterruptedAttempt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := connectDB(t)
	st := NewStore(rdb, slogDiscard())
	var runs atomic.Int64
	block := jobs.Define(jobs.Spec[struct{}, struct{}]{
		Name: "block", Queue: "default", Timeout: time.Minute, MaxAttempts: 1,
		Handle: func(ctx context.Context, _ *jobs.Job, _ struct{}) (struct{}, error) {
			if runs.Add(1) == 1 {
				<-ctx.Done() // the first run is stopped by the shutdown
				return struct{}{}, ctx.Err()
			}
			return struct{}{}, nil
		},
	})
	reg, err := jobs.NewRegistry(block)
	require.NoError(t, err)
	newWorker := func() *Worker {
		w := NewWorker(rdb, reg, WorkerOptions{
			Pools:        []Pool{{Name: "io", Queues: map[string]int{"default": 1}, Concurrency: 1}},
			PollInterval: 10 * time.Millisecond, ShutdownTimeout: 100 * time.Millisecond, Retention: time.Hour,
			HeartbeatInterval: 50 * time.Millisecond, LostAfter: 200 * time.Millisecond, Logger: slogDiscard(),
		})
		require.NoError(t, w.Start())
		return w
	}
	first := newWorker()
	rec, _, err := st.Create(ctx, store.NewJob{Tenant: "t", Type: "block", Queue: "default", Payload: json.RawMessage(`{}`), MaxAttempts: 1, Timeout: time.Minute})
	require.NoError(t, err)
	redistest.Eventually(t, 10*time.Second, func() bool { return runs.Load() == 1 }, "first attempt runs")
	first.Shutdown()

	redistest.Eventually(t, 5*time.Second, func() bool {
		got, err := st.Get(ctx, "t", rec.ID)
		require.NoError(t, err)
		return got.State == store.StatePending && got.Attempts == 0
	}, "the interrupted attempt is given back")
	n, err := rdb.LLen(ctx, asynqPendingKey("default")).Result()
	require.NoError(t, err)
	require.Equal(t, int64(1), n, "the task is back in its queue at once")

	second := newWorker()
	t.Cleanup(second.Shutdown)
	redistest.Eventually(t, 10*time.Second, func() bool {
		got, err := st.Get(ctx, "t", rec.ID)
		require.NoError(t, err)
		return got.State == store.StateSucceeded
	}, "the job succeeds on the next worker")
	got, err := st.Get(ctx, "t", rec.ID)
	require.NoError(t, err)
	require.Equal(t, 1, got.Attempts, "attempts never exceed max_attempts")
	require.Zero(t, got.LostAttempts, "a shutdown is not a lost worker")
	require.Len(t, got.AttemptErrors, 1)
	require.True(t, got.AttemptErrors[0].Lost)
	require.Contains(t, got.AttemptErrors[0].Message, "shut down before the handler finished")
}

func TestWorkerHeartbeat(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := connectDB(t)
	reg, err := jobs.NewRegistry(builtin.Types()...)
	require.NoError(t, err)
	w := NewWorker(rdb, reg, WorkerOptions{
		Pools:        []Pool{{Name: "io", Queues: map[string]int{"default": 1}, Concurrency: 1}},
		PollInterval: 10 * time.Millisecond, ShutdownTimeout: time.Second, Retention: time.Hour,
		HeartbeatInterval: 50 * time.Millisecond, LostAfter: 200 * time.Millisecond, Logger: slogDiscard(),
	})
	require.NoError(t, w.Start())
	score, err := rdb.ZScore(ctx, heartbeatsKey, w.ID()).Result()
	require.NoError(t, err, "registered before Start returns")
	require.Greater(t, score, float64(time.Now().UnixMilli()), "expiry in the future")
	first := score
	redistest.Eventually(t, 5*time.Second, func() bool {
		s, err := rdb.ZScore(ctx, heartbeatsKey, w.ID()).Result()
		return err == nil && s > first
	}, "heartbeats move the expiry on")
	w.Shutdown()
	_, err = rdb.ZScore(ctx, heartbeatsKey, w.ID()).Result()
	require.ErrorIs(t, err, redis.Nil, "a clean shutdown unregisters the worker")
}

func TestCheckDurability(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.NewServer(t) // its own server: the test changes its configuration
	rdb, err := Connect(ctx, srv.URL(0))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	logged := func() string {
		var b strings.Builder
		CheckDurability(ctx, rdb, slog.New(slog.NewTextHandler(&b, nil)))
		return b.String()
	}
	require.NoError(t, rdb.ConfigSet(ctx, "appendonly", "no").Err())
	require.NoError(t, rdb.ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Err())
	out := logged()
	require.Contains(t, out, "set appendonly yes")
	require.Contains(t, out, "set maxmemory-policy noeviction")

	require.NoError(t, rdb.ConfigSet(ctx, "appendonly", "yes").Err())
	require.NoError(t, rdb.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err())
	require.Empty(t, logged(), "no warning for a durable setup")

	// Turning appendonly on started an AOF rewrite in a forked child; a
	// child still writing into the server's directory when the test ends
	// (Stop kills only the server) made removing that directory fail.
	redistest.Eventually(t, 10*time.Second, func() bool {
		info := rdb.Info(ctx, "persistence").Val()
		return strings.Contains(info, "aof_rewrite_in_progress:0") && strings.Contains(info, "aof_rewrite_scheduled:0")
	}, "the AOF rewrite finishes")
}
