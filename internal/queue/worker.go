package queue

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/jobforge/jobforge/jobs"
)

// Pool is a set of queues served by one asynq server with its own
// concurrency, e.g. I/O-bound queues with many slots and a CPU queue with
// one slot per core.
type Pool struct {
	Name        string
	Queues      map[string]int // queue name → weight
	Concurrency int
	// PollInterval overrides WorkerOptions.PollInterval for this pool: each
	// idle check costs about three Redis commands per queue, so a pool of
	// long jobs can check rarely while a pool of short ones checks often.
	PollInterval time.Duration
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
	// Backoff overrides every job's retry policy (tests use it for speed).
	Backoff func(n int) time.Duration
	// DisableWakeUp makes idle pools poll every PollInterval instead of
	// waiting up to PollInterval for a job to arrive (see wakeup.go).
	DisableWakeUp bool
	// CancelCheckInterval is how often the worker re-reads the state of its
	// running jobs, in case a cancellation message was missed. Default 1s.
	CancelCheckInterval time.Duration
	Logger              *slog.Logger
	// Metrics records job and slot metrics; nil records none.
	Metrics *Metrics
	// TracerProvider traces each attempt as a child of the request that
	// created the job (see observe.go); nil traces nothing.
	TracerProvider trace.TracerProvider
}

// Worker runs job handlers for the tasks in its pools' queues.
type Worker struct {
	rdb     redis.UniversalClient
	reg     *jobs.Registry
	opts    WorkerOptions
	servers []*asynq.Server
	waker   *waker                // holds idle queue checks until a job arrives (wakeup.go)
	wakeRDB redis.UniversalClient // the asynq servers' client, with the waker's hook; nil when polling
	log     *slog.Logger
	now     func() time.Time

	mu      sync.Mutex
	running map[string]context.CancelCauseFunc

	stop context.CancelFunc
	done sync.WaitGroup
}

// errCancelled is the cause of a handler context cancelled by CancelJob.
var errCancelled = errors.New("job cancelled")

// NewWorker returns a Worker; Start runs it.
func NewWorker(rdb redis.UniversalClient, reg *jobs.Registry, opts WorkerOptions) *Worker {
	if opts.CancelCheckInterval <= 0 {
		opts.CancelCheckInterval = time.Second
	}
	w := &Worker{rdb: rdb, reg: reg, opts: opts, log: opts.Logger, now: time.Now, running: map[string]context.CancelCauseFunc{}}
	w.waker = newWaker(opts.Pools, opts.PollInterval)
	srvRDB := rdb
	if !opts.DisableWakeUp {
		if c, ok := wakeClient(rdb, w.waker); ok {
			srvRDB, w.wakeRDB = c, c
		}
	}
	for _, p := range opts.Pools {
		check := cmp.Or(p.PollInterval, opts.PollInterval)
		if w.wakeRDB != nil {
			// The waker holds an idle pool's check for up to the poll
			// interval, or until a job arrives: asynq need not sleep.
			check = 200 * time.Microsecond
		}
		srv := asynq.NewServerFromRedisClient(srvRDB, asynq.Config{
			Concurrency:              p.Concurrency,
			Queues:                   p.Queues,
			TaskCheckInterval:        check,
			DelayedTaskCheckInterval: opts.DelayedCheckInterval,
			ShutdownTimeout:          opts.ShutdownTimeout,
			RetryDelayFunc:           w.retryDelay,
			Logger:                   asynqLogger{log: opts.Logger.With("pool", p.Name)},
			LogLevel:                 asynq.WarnLevel,
		})
		w.servers = append(w.servers, srv)
	}
	return w
}

// retryDelay applies the job's own retry policy (carried in a task header)
// rather than one policy for the whole server. n is the number of failed
// attempts so far minus one, as asynq counts.
func (w *Worker) retryDelay(n int, _ error, t *asynq.Task) time.Duration {
	if w.opts.Backoff != nil {
		return w.opts.Backoff(n + 1)
	}
	var p RetryPolicy
	if h := t.Headers()[headerRetry]; h != "" {
		if parsed, err := parseRetryPolicy(h); err == nil {
			p = parsed
		}
	}
	// asynq stores the retry time in whole seconds (truncated), which would
	// run the next attempt up to a second early: round up instead.
	now := w.now()
	due := now.Add(p.Delay(n+1, rand.Float64()))
	if frac := due.Sub(due.Truncate(time.Second)); frac > 0 {
		due = due.Add(time.Second - frac)
	}
	return due.Sub(now)
}

// Start starts every pool and the cancellation listener. It returns once
// they are running.
func (w *Worker) Start() error {
	ctx, cancel := context.WithCancel(context.Background())
	w.stop = cancel
	h := asynq.HandlerFunc(w.process)
	for i, srv := range w.servers {
		if err := srv.Start(w.instrument(w.opts.Pools[i], h)); err != nil {
			for _, started := range w.servers[:i] {
				started.Shutdown()
			}
			cancel()
			return fmt.Errorf("start pool %s: %w", w.opts.Pools[i].Name, err)
		}
	}
	w.done.Add(2)
	go func() { defer w.done.Done(); w.listenCancellations(ctx) }()
	go func() { defer w.done.Done(); w.pollCancellations(ctx) }()
	return nil
}

// Shutdown stops fetching new jobs, waits up to ShutdownTimeout for running
// ones, and puts the rest back in their queues.
func (w *Worker) Shutdown() {
	w.waker.stop() // asynq's Stop waits for a held queue check
	for _, srv := range w.servers {
		srv.Stop() // stop fetching in every pool first
	}
	for _, srv := range w.servers {
		srv.Shutdown()
	}
	if w.wakeRDB != nil {
		_ = w.wakeRDB.Close()
	}
	if w.stop != nil {
		w.stop()
		w.done.Wait()
	}
}

// listenCancellations stops handlers of jobs cancelled while running, as
// announced on cancelChannel, and wakes idle pools when jobs arrive in
// their queues (wakeChannel).
func (w *Worker) listenCancellations(ctx context.Context) {
	sub := w.rdb.Subscribe(ctx, cancelChannel, wakeChannel)
	defer sub.Close()
	ch := sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			if m.Channel == wakeChannel {
				w.waker.notify(m.Payload)
				continue
			}
			w.cancelRunning(m.Payload)
		}
	}
}

// pollCancellations re-reads the state of running jobs now and then, so a
// cancellation published while this worker was disconnected still stops
// the handler.
func (w *Worker) pollCancellations(ctx context.Context) {
	t := time.NewTicker(w.opts.CancelCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		ids := make([]string, 0, len(w.running))
		for id := range w.running {
			ids = append(ids, id)
		}
		w.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		pipe := w.rdb.Pipeline()
		cmds := make([]*redis.StringCmd, len(ids))
		for i, id := range ids {
			cmds[i] = pipe.HGet(ctx, jobKey(id), fState)
		}
		_, _ = pipe.Exec(ctx)
		for i, c := range cmds {
			if c.Val() == string(StateCancelled) {
				w.cancelRunning(ids[i])
			}
		}
	}
}

func (w *Worker) cancelRunning(id string) {
	w.mu.Lock()
	cancel := w.running[id]
	w.mu.Unlock()
	if cancel != nil {
		cancel(errCancelled)
	}
}

// errInterrupted is returned when asynq cancelled the attempt's context
// itself (its lease was lost); asynq then decides the task's fate and the
// record is left for the next attempt to update.
var errInterrupted = errors.New("attempt interrupted by the worker (shutdown or lost lease)")

func (w *Worker) process(ctx context.Context, t *asynq.Task) error {
	id, _ := asynq.GetTaskID(ctx)
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	queueName, _ := asynq.GetQueueName(ctx)
	log := jobLogger{log: w.log, attrs: []any{"job_id", id, "type", t.Type(), "queue", queueName}}
	keys := jobKeys(id)

	typ, ok := w.reg.Lookup(t.Type())
	if !ok {
		// A newer API accepted a type this worker does not know. Fail for
		// good rather than retrying on a worker that cannot help.
		log.Log(ctx, slog.LevelError, "job type not registered on this worker")
		w.finish(ctx, log, keys, StateFailed, nil, &AttemptError{
			Message: fmt.Sprintf("job type %q is not registered on the worker", t.Type()), Attempt: retried + 1, Permanent: true,
		})
		return fmt.Errorf("unknown job type %q: %w", t.Type(), asynq.SkipRetry)
	}

	if ms, err := strconv.ParseInt(t.Headers()[headerNotBefore], 10, 64); err == nil {
		if wait := time.UnixMicro(ms).Sub(w.now()); wait > 0 {
			// Released early by asynq's whole-second scheduling (< 1s).
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return errInterrupted
			case <-timer.C:
			}
		}
	}

	res, err := w.start(ctx, keys, t.Headers()[headerTenant], id)
	switch {
	case errors.Is(err, redis.Nil):
		log.Log(ctx, slog.LevelWarn, "job record is gone; skipping task")
		return nil
	case err != nil:
		return fmt.Errorf("mark job running: %w", err)
	case fmt.Sprint(res[0]) != string(StateRunning):
		log.Log(ctx, slog.LevelInfo, "job already finished; skipping task", "state", res[0])
		return nil
	}
	attempt := int(res[1].(int64))
	log.attrs = append(log.attrs, "attempt", attempt)
	w.attemptStarted(ctx, attempt)

	timeout := typ.Timeout()
	if ms, err := strconv.ParseInt(t.Headers()[headerTimeout], 10, 64); err == nil && ms > 0 {
		timeout = time.Duration(ms) * time.Millisecond
	}
	jobCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w.mu.Lock()
	w.running[id] = cancel
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.running, id)
		w.mu.Unlock()
	}()
	runCtx, cancelTimeout := context.WithTimeout(jobCtx, timeout)
	defer cancelTimeout()

	started := w.now()
	job := jobs.NewJob(id, t.Type(), attempt, attempt+maxRetry-retried, &reporter{rdb: w.rdb, keys: keys, now: w.now, cancel: cancel})
	result, herr := typ.Run(runCtx, job, t.Payload())
	if herr == nil {
		w.finish(ctx, log, keys, StateSucceeded, result, nil)
		log.Log(ctx, slog.LevelInfo, "job succeeded", "duration", w.now().Sub(started))
		return nil
	}

	msg := herr.Error()
	switch {
	case errors.Is(context.Cause(jobCtx), errCancelled):
		// The record is CANCELLED already; completing the task without an
		// error keeps asynq from retrying it.
		log.Log(ctx, slog.LevelInfo, "job cancelled while running", "duration", w.now().Sub(started))
		return nil
	case errors.Is(herr, context.DeadlineExceeded) && runCtx.Err() != nil && ctx.Err() == nil:
		msg = fmt.Sprintf("attempt timed out after %s", timeout)
	case ctx.Err() != nil:
		// Only asynq cancels the task's own context: the lease expired and
		// asynq is rescheduling the task.
		log.Log(ctx, slog.LevelWarn, "job attempt interrupted; asynq will reschedule it")
		return errInterrupted
	}
	permanent := jobs.IsPermanent(herr)
	state := StateRetrying
	if permanent || retried >= maxRetry {
		state = StateFailed
	}
	w.finish(ctx, log, keys, state, nil, &AttemptError{Message: msg, Attempt: attempt, Permanent: permanent})
	log.Log(ctx, slog.LevelWarn, "job attempt failed", "state", state, "error", msg)
	if permanent {
		return fmt.Errorf("%w: %w", asynq.SkipRetry, herr)
	}
	return herr
}

// start marks the job RUNNING and takes it out of its tenant's waiting set,
// in one round trip.
func (w *Worker) start(ctx context.Context, keys []string, tenant, id string) ([]any, error) {
	var res *redis.Cmd
	err := pipelined(ctx, w.rdb, func(pipe redis.Pipeliner) {
		res = startScript.EvalSha(ctx, pipe, keys, micros(w.now()))
		if tenant != "" {
			pipe.ZRem(ctx, waitingKey(tenant), id)
		}
	})
	if err != nil {
		return nil, err
	}
	return res.Slice()
}

// finish records the outcome of an attempt. It runs even when the attempt's
// context is done (timeouts), bounded by its own short deadline.
func (w *Worker) finish(ctx context.Context, log jobLogger, keys []string, state State, result json.RawMessage, aerr *AttemptError) {
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
	got, err := finishScript.Run(ctx, w.rdb, keys,
		string(state), micros(now), retention, micros(expire), string(result), string(errJSON)).Text()
	if err != nil && !errors.Is(err, redis.Nil) {
		log.Log(ctx, slog.LevelError, "record job outcome", "state", state, "error", err)
	}
	if !errors.Is(err, redis.Nil) && (err != nil || got == string(state)) {
		w.attemptFinished(ctx, state) // not when the job was cancelled or removed meanwhile
	}
}

type reporter struct {
	rdb    redis.UniversalClient
	keys   []string
	now    func() time.Time
	cancel context.CancelCauseFunc
}

func (r *reporter) ReportProgress(ctx context.Context, percent int, message string) error {
	if len(message) > 1024 {
		message = message[:1024]
	}
	n, err := progressScript.Run(ctx, r.rdb, r.keys, percent, message, micros(r.now())).Int()
	if err != nil {
		return fmt.Errorf("report progress: %w", err)
	}
	if n == 0 {
		// The job is no longer RUNNING: it was cancelled.
		r.cancel(errCancelled)
		return errCancelled
	}
	return nil
}

// jobLogger logs with a job's attributes. Unlike slog.Logger.With, which
// formats the attributes up front, it formats them only when a line is
// actually written: most jobs log one line or none, so With was pure
// overhead on the worker's hot path.
type jobLogger struct {
	log   *slog.Logger
	attrs []any
}

func (l jobLogger) Log(ctx context.Context, level slog.Level, msg string, kv ...any) {
	if !l.log.Enabled(ctx, level) {
		return
	}
	l.log.Log(ctx, level, msg, append(l.attrs[:len(l.attrs):len(l.attrs)], kv...)...)
}

// asynqLogger routes asynq's own logs through slog.
type asynqLogger struct{ log *slog.Logger }

func (l asynqLogger) Debug(args ...any) { l.log.Debug(sprint(args)) }
func (l asynqLogger) Info(args ...any)  { l.log.Info(sprint(args)) }
func (l asynqLogger) Warn(args ...any)  { l.log.Warn(sprint(args)) }
func (l asynqLogger) Error(args ...any) { l.log.Error(sprint(args)) }
func (l asynqLogger) Fatal(args ...any) { l.log.Error(sprint(args), "fatal", true) }

func sprint(args []any) string { return strings.TrimSpace(fmt.Sprint(args...)) }
