package queue_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/queue"
	"github.com/jobforge/jobforge/internal/redistest"
	"github.com/jobforge/jobforge/internal/store"
	"github.com/jobforge/jobforge/jobs"
	"github.com/jobforge/jobforge/jobs/builtin"
)

func TestMain(m *testing.M) { redistest.Main(m) }

type bundle struct {
	rdb   queue.Client
	store *queue.Store
}

func setup(t *testing.T) *bundle {
	t.Helper()
	ctx := context.Background()
	rdb, err := queue.Connect(ctx, redistest.NewDB(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	return &bundle{rdb: rdb, store: queue.NewStore(rdb, testLogger(t))}
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// startWorker runs a worker with fast polling and retries on b's database.
func (b *bundle) startWorker(t *testing.T, retention time.Duration) {
	t.Helper()
	reg, err := jobs.NewRegistry(builtin.Types()...)
	require.NoError(t, err)
	w := queue.NewWorker(b.rdb, reg, queue.WorkerOptions{
		Pools: []queue.Pool{
			{Name: "io", Queues: map[string]int{"default": 1}, Concurrency: 4},
			{Name: "cpu", Queues: map[string]int{"cpu": 1}, Concurrency: 1},
		},
		PollInterval:         5 * time.Millisecond,
		DelayedCheckInterval: 50 * time.Millisecond,
		ShutdownTimeout:      2 * time.Second,
		Retention:            retention,
		Backoff:              func(int) time.Duration { return 10 * time.Millisecond },
		Logger:               testLogger(t),
	})
	require.NoError(t, w.Start())
	t.Cleanup(w.Shutdown)
}

func (b *bundle) waitState(t *testing.T, id string, want store.State, timeout time.Duration) *store.Record {
	t.Helper()
	var rec *store.Record
	deadline := time.Now().Add(timeout)
	for {
		r, err := b.store.Get(context.Background(), "t", id)
		require.NoError(t, err)
		rec = r
		if r.State == want {
			return rec
		}
		require.True(t, time.Now().Before(deadline), "job %s did not reach %s within %s; last: %+v", id, want, timeout, rec)
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCreateAndGet(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	rec, _, err := b.store.Create(ctx, store.NewJob{
		Tenant: "t", Type: "simulate", Queue: "default", Payload: json.RawMessage(`{"outcome":"succeed"}`),
		Labels: map[string]string{"team": "data"}, MaxAttempts: 3, Timeout: time.Minute,
	})
	require.NoError(t, err)
	require.Equal(t, store.StatePending, rec.State)

	got, err := b.store.Get(ctx, "t", rec.ID)
	require.NoError(t, err)
	require.Equal(t, rec.ID, got.ID)
	require.Equal(t, "simulate", got.Type)
	require.Equal(t, "default", got.Queue)
	require.Equal(t, store.StatePending, got.State)
	require.JSONEq(t, `{"outcome":"succeed"}`, string(got.Payload))
	require.Equal(t, map[string]string{"team": "data"}, got.Labels)
	require.Equal(t, 3, got.MaxAttempts)
	require.Equal(t, time.Minute, got.Timeout)
	require.Equal(t, rec.CreateTime, got.CreateTime)
	require.True(t, got.ExpireTime.IsZero(), "unfinished jobs do not expire")

	_, err = b.store.Get(ctx, "t", "no-such-job")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestCreateScheduled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	at := time.Now().Add(time.Hour)
	rec, _, err := b.store.Create(ctx, store.NewJob{
		Tenant: "t", Type: "simulate", Queue: "default", Payload: json.RawMessage(`{}`), MaxAttempts: 1, Timeout: time.Minute, ScheduleTime: at,
	})
	require.NoError(t, err)
	got, err := b.store.Get(ctx, "t", rec.ID)
	require.NoError(t, err)
	require.Equal(t, store.StateScheduled, got.State)
	require.WithinDuration(t, at, got.ScheduleTime, time.Microsecond)
}

func TestWorkerRunsJobs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startWorker(t, time.Hour)
	ctx := context.Background()

	tests := []struct {
		name        string
		typ, queue  string
		payload     string
		maxAttempts int
		timeout     time.Duration
		wantState   store.State
		wantResult  string
		wantErr     string
		wantAttempt int
		permanent   bool
	}{
		{
			name: "cpu job succeeds", typ: "primes", queue: "cpu", payload: `{"limit":100000}`, maxAttempts: 1,
			wantState: store.StateSucceeded, wantResult: `{"limit":100000,"count":9592,"largest":99991}`, wantAttempt: 1,
		},
		{
			name: "fails then succeeds", typ: "simulate", queue: "default", payload: `{"fail_times":2,"message":"flaky"}`, maxAttempts: 5,
			wantState: store.StateSucceeded, wantResult: `{"attempt":3}`, wantAttempt: 3,
			wantErr: "flaky (attempt 2 of 2 planned failures)",
		},
		{
			name: "fails after all attempts", typ: "simulate", queue: "default", payload: `{"outcome":"fail","message":"boom"}`, maxAttempts: 2,
			wantState: store.StateFailed, wantErr: "boom", wantAttempt: 2,
		},
		{
			name: "permanent error is not retried", typ: "simulate", queue: "default", payload: `{"outcome":"fail","message":"bad","permanent":true}`, maxAttempts: 5,
			wantState: store.StateFailed, wantErr: "bad", wantAttempt: 1, permanent: true,
		},
		{
			name: "panic fails the attempt and the worker lives on", typ: "simulate", queue: "default", payload: `{"outcome":"panic","message":"kaboom"}`, maxAttempts: 2,
			wantState: store.StateFailed, wantErr: "handler panicked: simulated panic: kaboom", wantAttempt: 2,
		},
		{
			name: "crash job on a worker that does not allow them fails for good", typ: "simulate", queue: "default", payload: `{"outcome":"crash"}`, maxAttempts: 3,
			wantState: store.StateFailed, wantErr: "crash jobs are disabled on this worker: start it with -allow-crash-jobs", wantAttempt: 1, permanent: true,
		},
		{
			name: "timeout fails the attempt", typ: "simulate", queue: "default", payload: `{"duration_millis":60000}`, maxAttempts: 1, timeout: 200 * time.Millisecond,
			wantState: store.StateFailed, wantErr: "attempt timed out after", wantAttempt: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			timeout := tt.timeout
			if timeout == 0 {
				timeout = time.Minute
			}
			rec, _, err := b.store.Create(ctx, store.NewJob{
				Tenant: "t", Type: tt.typ, Queue: tt.queue, Payload: json.RawMessage(tt.payload), MaxAttempts: tt.maxAttempts, Timeout: timeout,
			})
			require.NoError(t, err)
			got := b.waitState(t, rec.ID, tt.wantState, 20*time.Second)
			require.Equal(t, tt.wantAttempt, got.Attempts)
			require.False(t, got.StartTime.IsZero())
			require.False(t, got.EndTime.IsZero())
			require.WithinDuration(t, time.Now().Add(time.Hour), got.ExpireTime, time.Minute)
			if tt.wantResult != "" {
				require.JSONEq(t, tt.wantResult, string(got.Result))
				require.Equal(t, 100, got.Progress.Percent)
			} else {
				require.Empty(t, got.Result)
			}
			if tt.wantErr != "" {
				require.NotNil(t, got.Error)
				require.Contains(t, got.Error.Message, tt.wantErr)
				require.Equal(t, tt.permanent, got.Error.Permanent)
			} else {
				require.Nil(t, got.Error)
			}
			ttl, err := b.rdb.TTL(ctx, "jobforge:{"+rec.Queue+"}:job:"+rec.ID).Result()
			require.NoError(t, err)
			require.Greater(t, ttl, 59*time.Minute, "finished job keeps its retention TTL")
		})
	}
}

func TestProgressIsVisibleWhileRunning(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startWorker(t, time.Hour)
	rec, _, err := b.store.Create(context.Background(), store.NewJob{
		Tenant: "t", Type: "report", Queue: "default", Payload: json.RawMessage(`{"pages":20,"page_millis":100}`), MaxAttempts: 1, Timeout: time.Minute,
	})
	require.NoError(t, err)
	var seen *store.Record
	redistest.Eventually(t, 20*time.Second, func() bool {
		r, err := b.store.Get(context.Background(), "t", rec.ID)
		require.NoError(t, err)
		seen = r
		return r.State == store.StateRunning && r.Progress.Percent > 0 && r.Progress.Percent < 100
	}, "running job with partial progress")
	require.Regexp(t, `^page \d+ of 20$`, seen.Progress.Message)
	got := b.waitState(t, rec.ID, store.StateSucceeded, 20*time.Second)
	require.JSONEq(t, `{"title":"","pages":20,"checksum":2870}`, string(got.Result))
}

// Resuming the watch of a finished job after its last event ends at once
// with no event, rather than waiting for events that will never come; the
// whole stream of a finished job replays from the start.
func TestWatchResumeOfFinishedJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startWorker(t, time.Hour)
	ctx := context.Background()
	rec, _, err := b.store.Create(ctx, store.NewJob{Tenant: "t", Type: "simulate", Queue: "default", Payload: json.RawMessage(`{}`), MaxAttempts: 1, Timeout: time.Minute})
	require.NoError(t, err)
	b.waitState(t, rec.ID, store.StateSucceeded, 20*time.Second)

	var all []store.Event
	require.NoError(t, b.store.Watch(ctx, "t", rec.ID, "0-0", func(e store.Event) error { all = append(all, e); return nil }))
	require.NotEmpty(t, all)
	last := all[len(all)-1]
	require.Equal(t, store.StateSucceeded, last.State, "replay ends with the terminal event")

	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var after []store.Event
	require.NoError(t, b.store.Watch(wctx, "t", rec.ID, last.ID, func(e store.Event) error { after = append(after, e); return nil }),
		"the watch ends instead of waiting out the deadline")
	require.Empty(t, after)
}
