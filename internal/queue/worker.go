package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/jobforge/jobforge/jobs"
)

// Pool is a set of queues served by one asynq server with its own
// concurrency, e.g. I/O-bound queues with many slots and a CPU queue with
// one slot per core.
type Pool struct {
	Name        string
	Queues      map[string]int // queue name → weight
	Concurrency int
}

// WorkerOptions configures a Worker.
type WorkerOptions struct {
	Pools []Pool
	// PollInterval is how often an idle pool checks its queues. asynq sleeps
	// a random time in [T/2, 3T/2) between checks when all queues are empty.
	PollInterval time.Duration
	// DelayedCheckInterval is how often scheduled and retrying jobs are
	// moved to their queues once due.
	DelayedCheckInterval time.Duration
	// ShutdownTimeout bounds how long running jobs may finish on shutdown
	// before they are put back in their queue.
	ShutdownTimeout time.Duration
	// Retention is how long finished jobs stay readable.
	Retention time.Duration
	// Backoff computes the delay before retry n (1-based).
	Backoff func(n int) time.Duration
	Logger  *slog.Logger
}

// Worker runs job handlers for the tasks in its pools' queues.
type Worker struct {
	rdb     redis.UniversalClient
	reg     *jobs.Registry
	opts    WorkerOptions
	servers []*asynq.Server
	log     *slog.Logger
	now     func() time.Time
}

// DefaultBackoff is exponential from 1 s, doubling, capped at 10 min, with
// ±20 % jitter so that retries of a failed batch spread out.
func DefaultBackoff(n int) time.Duration {
	d := time.Second << min(max(n-1, 0), 10)
	d = min(d, 10*time.Minute)
	jitter := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * jitter)
}

// NewWorker returns a Worker; Start runs it.
func NewWorker(rdb redis.UniversalClient, reg *jobs.Registry, opts WorkerOptions) *Worker {
	if opts.Backoff == nil {
		opts.Backoff = DefaultBackoff
	}
	w := &Worker{rdb: rdb, reg: reg, opts: opts, log: opts.Logger, now: time.Now}
	for _, p := range opts.Pools {
		srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
			Concurrency:              p.Concurrency,
			Queues:                   p.Queues,
			TaskCheckInterval:        opts.PollInterval,
			DelayedTaskCheckInterval: opts.DelayedCheckInterval,
			ShutdownTimeout:          opts.ShutdownTimeout,
			RetryDelayFunc: func(n int, _ error, _ *asynq.Task) time.Duration {
				return opts.Backoff(n)
			},
			Logger:   asynqLogger{log: opts.Logger.With("pool", p.Name)},
			LogLevel: asynq.WarnLevel,
		})
		w.servers = append(w.servers, srv)
	}
	return w
}

// Start starts every pool. It returns once they are running.
func (w *Worker) Start() error {
	h := asynq.HandlerFunc(w.process)
	for i, srv := range w.servers {
		if err := srv.Start(h); err != nil {
			for _, started := range w.servers[:i] {
				started.Shutdown()
			}
			return fmt.Errorf("start pool %s: %w", w.opts.Pools[i].Name, err)
		}
	}
	return nil
}

// Shutdown stops fetching new jobs, waits up to ShutdownTimeout for running
// ones, and puts the rest back in their queues.
func (w *Worker) Shutdown() {
	for _, srv := range w.servers {
		srv.Stop() // stop fetching in every pool first
	}
	for _, srv := range w.servers {
		srv.Shutdown()
	}
}

// Scripts that move a job's record through its lifecycle. Each is a single
// round trip and refuses to overwrite a terminal state, so a late write from
// a slow or duplicate attempt cannot resurrect a finished job.
var (
	// KEYS[1] job; ARGV now_us, attempt. Returns the state after the call,
	// or false when the record no longer exists.
	startScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local st = redis.call('HGET', KEYS[1], 'state')
if st == 'SUCCEEDED' or st == 'FAILED' or st == 'CANCELLED' then return st end
redis.call('HSET', KEYS[1], 'state', 'RUNNING', 'start_us', ARGV[1], 'update_us', ARGV[1], 'attempts', ARGV[2])
return 'RUNNING'`)

	// KEYS[1] job; ARGV percent, message, now_us.
	progressScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'state') ~= 'RUNNING' then return 0 end
redis.call('HSET', KEYS[1], 'progress_pct', ARGV[1], 'progress_msg', ARGV[2], 'progress_us', ARGV[3], 'update_us', ARGV[3])
return 1`)

	// KEYS[1] job; ARGV state, now_us, retention_s, expire_us, result, error.
	// Empty result/error are not written. Terminal states get end time and
	// expiry. Returns the state after the call.
	finishScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return false end
if st ~= 'RUNNING' then return st end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'update_us', ARGV[2])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'result', ARGV[5]) end
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[6]) end
if ARGV[1] == 'SUCCEEDED' or ARGV[1] == 'FAILED' or ARGV[1] == 'CANCELLED' then
  redis.call('HSET', KEYS[1], 'end_us', ARGV[2], 'expire_us', ARGV[4])
  if ARGV[1] == 'SUCCEEDED' then redis.call('HSET', KEYS[1], 'progress_pct', 100, 'progress_us', ARGV[2]) end
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return ARGV[1]`)
)

// errInterrupted is returned when asynq cancelled the attempt's context
// itself (its lease was lost); asynq then decides the task's fate and the
// record is left for the next attempt to update.
var errInterrupted = errors.New("attempt interrupted by the worker (shutdown or lost lease)")

func (w *Worker) process(ctx context.Context, t *asynq.Task) error {
	id, _ := asynq.GetTaskID(ctx)
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	attempt, maxAttempts := retried+1, maxRetry+1
	log := w.log.With("job_id", id, "type", t.Type(), "attempt", attempt)
	key := jobKey(id)

	typ, ok := w.reg.Lookup(t.Type())
	if !ok {
		// A newer API accepted a type this worker does not know. Fail for
		// good rather than retrying on a worker that cannot help.
		log.ErrorContext(ctx, "job type not registered on this worker")
		w.finish(ctx, log, key, StateFailed, nil, &AttemptError{
			Message: fmt.Sprintf("job type %q is not registered on the worker", t.Type()), Attempt: attempt, Permanent: true,
		})
		return fmt.Errorf("unknown job type %q: %w", t.Type(), asynq.SkipRetry)
	}

	st, err := startScript.Run(ctx, w.rdb, []string{key}, micros(w.now()), attempt).Text()
	switch {
	case errors.Is(err, redis.Nil):
		log.WarnContext(ctx, "job record is gone; skipping task")
		return nil
	case err != nil:
		return fmt.Errorf("mark job running: %w", err)
	case st != string(StateRunning):
		log.InfoContext(ctx, "job already finished; skipping task", "state", st)
		return nil
	}

	timeout := typ.Timeout()
	if ms, err := strconv.ParseInt(t.Headers()[headerTimeout], 10, 64); err == nil && ms > 0 {
		timeout = time.Duration(ms) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	started := w.now()
	job := jobs.NewJob(id, t.Type(), attempt, maxAttempts, &reporter{rdb: w.rdb, key: key, now: w.now})
	result, herr := typ.Run(ctx, job, t.Payload())
	if herr == nil {
		w.finish(ctx, log, key, StateSucceeded, result, nil)
		log.InfoContext(ctx, "job succeeded", "duration", w.now().Sub(started))
		return nil
	}

	msg := herr.Error()
	switch {
	case errors.Is(herr, context.DeadlineExceeded) && ctx.Err() != nil:
		msg = fmt.Sprintf("attempt timed out after %s", timeout)
	case errors.Is(herr, context.Canceled) && ctx.Err() != nil:
		// Only asynq cancels the context without a deadline: the lease
		// expired and asynq is retrying the task.
		log.WarnContext(ctx, "job attempt interrupted; asynq will reschedule it")
		return errInterrupted
	}
	permanent := jobs.IsPermanent(herr)
	state := StateRetrying
	if permanent || attempt >= maxAttempts {
		state = StateFailed
	}
	w.finish(ctx, log, key, state, nil, &AttemptError{Message: msg, Attempt: attempt, Permanent: permanent})
	log.WarnContext(ctx, "job attempt failed", "state", state, "error", msg)
	if permanent {
		return fmt.Errorf("%w: %w", asynq.SkipRetry, herr)
	}
	return herr
}

// finish records the outcome of an attempt. It runs even when the attempt's
// context is done (timeouts), bounded by its own short deadline.
func (w *Worker) finish(ctx context.Context, log *slog.Logger, key string, state State, result json.RawMessage, aerr *AttemptError) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	now := w.now()
	var errJSON []byte
	if aerr != nil {
		aerr.Time = now.UTC()
		errJSON, _ = json.Marshal(aerr)
	}
	retention := max(int64(w.opts.Retention/time.Second), 1)
	expire := now.Add(time.Duration(retention) * time.Second)
	err := finishScript.Run(ctx, w.rdb, []string{key},
		string(state), micros(now), retention, micros(expire), string(result), string(errJSON)).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		log.ErrorContext(ctx, "record job outcome", "state", state, "error", err)
	}
}

type reporter struct {
	rdb redis.UniversalClient
	key string
	now func() time.Time
}

func (r *reporter) ReportProgress(ctx context.Context, percent int, message string) error {
	if len(message) > 1024 {
		message = message[:1024]
	}
	return progressScript.Run(ctx, r.rdb, []string{r.key}, percent, message, micros(r.now())).Err()
}

// asynqLogger routes asynq's own logs through slog.
type asynqLogger struct{ log *slog.Logger }

func (l asynqLogger) Debug(args ...any) { l.log.Debug(sprint(args)) }
func (l asynqLogger) Info(args ...any)  { l.log.Info(sprint(args)) }
func (l asynqLogger) Warn(args ...any)  { l.log.Warn(sprint(args)) }
func (l asynqLogger) Error(args ...any) { l.log.Error(sprint(args)) }
func (l asynqLogger) Fatal(args ...any) { l.log.Error(sprint(args), "fatal", true) }

func sprint(args []any) string { return strings.TrimSpace(fmt.Sprint(args...)) }
