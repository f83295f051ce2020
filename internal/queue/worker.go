package queue

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/jobforge/jobforge/internal/catalog"
	"github.com/jobforge/jobforge/internal/store"
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
	// HeartbeatInterval is how often the worker tells Redis it is alive and
	// extends the leases of the tasks it holds. Default 1s.
	HeartbeatInterval time.Duration
	// LostAfter is how long a worker may miss heartbeats before the
	// recovery loop gives its jobs to other workers. Default 3s; at least
	// twice HeartbeatInterval.
	LostAfter time.Duration
	// MaxLostAttempts is how many attempts a job may lose to workers that
	// stopped (crashed, killed) before it fails with reason WORKER_LOST.
	// Default 3.
	MaxLostAttempts int
	// AllowCrashJobs lets a job end the worker process (the simulate
	// type's "crash" outcome), for fault tests. Off in production.
	AllowCrashJobs bool
	// ID names this worker process in job records and attempt errors;
	// default host:pid:random.
	ID string
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

	id      string // this process, as job records name it
	mu      sync.Mutex
	running map[string]context.CancelCauseFunc
	held    map[string]string // job id → queue of every task between dequeue and outcome
	beats   heartbeatState
	catalog catalogPublication // the types this worker serves, as it publishes them

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
	opts.HeartbeatInterval = cmp.Or(opts.HeartbeatInterval, time.Second)
	opts.LostAfter = max(cmp.Or(opts.LostAfter, 3*time.Second), 2*opts.HeartbeatInterval)
	opts.MaxLostAttempts = cmp.Or(opts.MaxLostAttempts, 3)
	opts.ID = cmp.Or(opts.ID, newWorkerID())
	w := &Worker{
		rdb: rdb, reg: reg, opts: opts, log: opts.Logger, now: time.Now, id: opts.ID,
		running: map[string]context.CancelCauseFunc{}, held: map[string]string{},
	}
	var entries []catalog.Entry
	for _, t := range reg.Types() {
		entries = append(entries, catalog.EntryOf(t))
	}
	w.catalog, _ = newCatalogPublication(entries) // entries are plain data; encoding cannot fail
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
func (w *Worker) retryDelay(n int, err error, t *asynq.Task) time.Duration {
	if errors.Is(err, errNotServed) {
		return notServedDelay(n)
	}
	if w.opts.Backoff != nil {
		return w.opts.Backoff(n + 1)
	}
	var p store.RetryPolicy
	if h := t.Headers()[headerRetry]; h != "" {
		if parsed, err := store.ParseRetryPolicy(h); err == nil {
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
	w.heartbeat(ctx) // registered before the first attempt can start
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
	w.done.Add(4)
	go func() { defer w.done.Done(); w.listenCancellations(ctx) }()
	go func() { defer w.done.Done(); w.pollCancellations(ctx) }()
	go func() { defer w.done.Done(); every(ctx, w.opts.HeartbeatInterval, w.heartbeat) }()
	go func() { defer w.done.Done(); w.recoverLoop(ctx) }()
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
		w.unregister()
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
	every(ctx, w.opts.CancelCheckInterval, w.checkCancellations)
}

func (w *Worker) checkCancellations(ctx context.Context) {
	w.mu.Lock()
	ids := make([]string, 0, len(w.running))
	queues := make([]string, 0, len(w.running))
	for id := range w.running {
		ids = append(ids, id)
		queues = append(queues, w.held[id])
	}
	w.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	pipe := w.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGet(ctx, jobKey(queues[i], id), fState)
	}
	_, _ = pipe.Exec(ctx)
	for i, c := range cmds {
		if c.Val() == string(store.StateCancelled) {
			w.cancelRunning(ids[i])
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
// itself: the worker is shutting down (asynq has put the task back in its
// queue already) or asynq's lease of the task ran out.
var errInterrupted = errors.New("attempt interrupted by the worker (shutdown or lost lease)")

// Backoff of the Redis writes that start an attempt and record its outcome,
// which are retried through Redis blips: an outcome that is not recorded
// would make the job run again.
const (
	writeRetryMin = 20 * time.Millisecond
	writeRetryMax = 500 * time.Millisecond
)

func (w *Worker) process(ctx context.Context, t *asynq.Task) error {
	id, _ := asynq.GetTaskID(ctx)
	queueName, _ := asynq.GetQueueName(ctx)
	log := jobLogger{log: w.log, attrs: []any{"job_id", id, "type", t.Type(), "queue", queueName}}
	keys := jobKeys(queueName, id)
	// From here until the attempt ends the worker's heartbeat extends the
	// task's lease: a lease that goes stale tells the recovery loop that
	// this process died (recovery.go).
	w.hold(id, queueName)
	defer w.release(id)

	typ, ok := w.reg.Lookup(t.Type())
	if !ok {
		return w.notServed(ctx, log, keys, t, id)
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

	st, err := w.start(ctx, keys, queueName, t.Headers()[headerTenant], id)
	switch {
	case errors.Is(err, redis.Nil):
		log.Log(ctx, slog.LevelWarn, "job record is gone; skipping task")
		return nil
	case err != nil:
		// The job is still PENDING; asynq brings the task back.
		return fmt.Errorf("mark job running: %w", err)
	case st.state != store.StateRunning:
		log.Log(ctx, slog.LevelInfo, "job already finished; skipping task", "state", st.state)
		return nil
	}
	attempt := st.attempt
	log.attrs = append(log.attrs, "attempt", attempt)
	log.Log(ctx, slog.LevelDebug, "job attempt started")
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
	maxAttempts := st.base + st.maxAttempts
	rep := &reporter{w: w, keys: keys, cancel: cancel}
	job := jobs.NewJob(id, t.Type(), attempt, maxAttempts, rep)
	result, herr := w.run(runCtx, log, typ, job, t.Payload())
	if herr == nil {
		w.finish(ctx, log, keys, store.StateSucceeded, result, nil)
		log.Log(ctx, slog.LevelInfo, "job succeeded", "duration", w.now().Sub(started))
		return nil
	}

	msg := herr.Error()
	switch cause := context.Cause(jobCtx); {
	case errors.Is(cause, errCancelled):
		// The record is CANCELLED already; completing the task without an
		// error keeps asynq from retrying it.
		log.Log(ctx, slog.LevelInfo, "job cancelled while running", "duration", w.now().Sub(started))
		return nil
	case errors.Is(cause, errFenced):
		// The recovery loop gave the job to another worker while this one
		// could not reach Redis: the other attempt's outcome counts.
		log.Log(ctx, slog.LevelWarn, "job attempt abandoned: another worker holds the job now")
		return nil
	case errors.Is(herr, context.DeadlineExceeded) && runCtx.Err() != nil && ctx.Err() == nil:
		msg = fmt.Sprintf("attempt timed out after %s", timeout)
	case ctx.Err() != nil:
		// Only asynq cancels the task's own context: on shutdown, after it
		// put the task back in its queue, or when its lease ran out. The
		// attempt had no outcome: give it back.
		w.interrupt(log, keys, attempt)
		return errInterrupted
	}
	permanent := jobs.IsPermanent(herr)
	state := store.StateRetrying
	if permanent || attempt >= maxAttempts {
		state = store.StateFailed
	}
	if w.finish(ctx, log, keys, state, nil, &store.AttemptError{Message: msg, Attempt: attempt, Permanent: permanent}) == "FENCED" {
		return nil
	}
	log.Log(ctx, slog.LevelWarn, "job attempt failed", "state", state, "error", msg)
	if state == store.StateFailed {
		// jobforge, not asynq, decides when attempts are used up (asynq's
		// retry budget is asynqRetryBudget): archive the task.
		return fmt.Errorf("%w: %w", asynq.SkipRetry, herr)
	}
	return herr
}

// errNotServed hands a task of a type this worker does not run back to its
// queue, for a worker that does (retryDelay spaces the hand-backs).
var errNotServed = errors.New("job type not run by this worker; handed back to its queue")

// notServed handles a task whose type this worker does not run. Workers
// with different job types may read one queue (a user's worker next to
// cmd/worker, or a rolling deploy that adds a type): the task goes back to
// its queue without starting an attempt, for a worker that runs the type.
// Only when it has bounced for about 50 minutes (asynq's retry budget) does
// the job fail, saying that no worker on its queue runs its type.
func (w *Worker) notServed(ctx context.Context, log jobLogger, keys []string, t *asynq.Task, id string) error {
	if n, _ := asynq.GetRetryCount(ctx); n < asynqRetryBudget-1 {
		log.Log(ctx, slog.LevelDebug, "job type not run by this worker; handed back")
		return errNotServed
	}
	log.Log(ctx, slog.LevelError, "no worker on this queue runs the job type; failing the job")
	queueName, _ := asynq.GetQueueName(ctx)
	if _, err := w.start(ctx, keys, queueName, t.Headers()[headerTenant], id); err == nil {
		w.finish(ctx, log, keys, store.StateFailed, nil, &store.AttemptError{
			Message: fmt.Sprintf("no worker reading queue of this job runs job type %q", t.Type()), Attempt: 1, Permanent: true,
		})
	}
	return fmt.Errorf("unknown job type %q: %w", t.Type(), asynq.SkipRetry)
}

// notServedDelay is how long a task a worker handed back waits before a
// worker may take it again: growing from 100 ms to 3 s, short enough that a
// job that met the wrong worker a few times is not held up much when the
// right one is there, long enough that a job no worker runs does not keep
// the queue busy (and asynq's retry budget lasts about 50 minutes).
func notServedDelay(n int) time.Duration {
	return min(100*time.Millisecond<<min(n, 5), 3*time.Second)
}

// run calls the handler, turning a panic into a failed attempt: the panic
// and its stack are logged and the worker lives on.
func (w *Worker) run(ctx context.Context, log jobLogger, typ *jobs.Type, job *jobs.Job, payload []byte) (res json.RawMessage, err error) {
	defer func() {
		if p := recover(); p != nil {
			log.Log(ctx, slog.LevelError, "job handler panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return typ.Run(ctx, job, payload)
}

// started is what startScript says about an attempt.
type started struct {
	state       store.State
	attempt     int // counting every attempt since the job was created
	base        int // attempts before the last :retry
	maxAttempts int // allowed since the last :retry
}

// start marks the job RUNNING on this worker and takes it out of its
// tenant's waiting set, in one round trip, retrying through Redis blips for
// up to a minute (the task stays held, so its lease is extended whenever
// Redis answers): the script may have run with its reply lost, and then
// only this worker can finish what it started.
func (w *Worker) start(ctx context.Context, keys []string, queue, tenant, id string) (started, error) {
	var res *redis.Cmd
	err := w.retryWrite(ctx, time.Minute, func(ctx context.Context) error {
		return pipelined(ctx, w.rdb, func(pipe redis.Pipeliner) {
			res = startScript.EvalSha(ctx, pipe, keys, micros(w.now()), w.id)
			if tenant != "" {
				pipe.ZRem(ctx, waitingKey(queue, tenant), id)
			}
		})
	})
	if err != nil {
		return started{}, err
	}
	v, err := res.Slice()
	if err != nil {
		return started{}, err
	}
	st := started{state: store.State(fmt.Sprint(v[0]))}
	if len(v) == 4 {
		a, _ := v[1].(int64)
		b, _ := v[2].(int64)
		m, _ := v[3].(int64)
		st.attempt, st.base, st.maxAttempts = int(a), int(b), int(max(m, 1))
	}
	return st, nil
}

// retryWrite runs write until it succeeds, fails for a reason other than
// Redis being unreachable (or a script it lost), or bound has passed.
func (w *Worker) retryWrite(ctx context.Context, bound time.Duration, write func(context.Context) error) error {
	deadline := w.now().Add(bound)
	wait := writeRetryMin
	for {
		err := write(ctx)
		if err == nil || errors.Is(err, redis.Nil) || !IsUnavailable(err) || w.now().Add(wait).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, writeRetryMax)
	}
}

// finish records the outcome of an attempt before the task is acknowledged
// to asynq. It runs even when the attempt's context is done (timeouts), and
// retries through Redis blips for up to a minute: an outcome that is not
// recorded would make the job run again. It returns the state the script
// reported ("FENCED" when another worker holds the job now).
func (w *Worker) finish(ctx context.Context, log jobLogger, keys []string, state store.State, result json.RawMessage, aerr *store.AttemptError) string {
	ctx = context.WithoutCancel(ctx)
	var errJSON []byte
	retention := max(int64(w.opts.Retention/time.Second), 1)
	var got string
	err := w.retryWrite(ctx, time.Minute, func(ctx context.Context) error {
		now := w.now()
		if aerr != nil {
			aerr.Time = now.UTC()
			errJSON, _ = json.Marshal(aerr)
		}
		expire := now.Add(time.Duration(retention) * time.Second)
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var err error
		got, err = finishScript.Run(ctx, w.rdb, keys,
			string(state), micros(now), retention, micros(expire), string(result), string(errJSON), w.id).Text()
		return err
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		log.Log(ctx, slog.LevelError, "record job outcome", "state", state, "error", err)
	}
	if got == "FENCED" {
		log.Log(ctx, slog.LevelWarn, "job outcome refused: another worker holds the job now", "state", state)
		return got
	}
	if !errors.Is(err, redis.Nil) && (err != nil || got == string(state)) {
		w.attemptFinished(ctx, state) // not when the job was cancelled or removed meanwhile
	}
	return got
}

// interrupt gives back the attempt of a job whose handler was stopped by a
// shutdown: asynq has requeued its task, and the attempt must not count.
func (w *Worker) interrupt(log jobLogger, keys []string, attempt int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	now := w.now()
	e, _ := json.Marshal(store.AttemptError{
		Message: fmt.Sprintf("attempt interrupted: worker %s shut down before the handler finished; the job was put back in its queue", w.id),
		Attempt: attempt, Time: now.UTC(), Lost: true,
	})
	n, err := interruptScript.Run(ctx, w.rdb, keys, w.id, attempt, micros(now), string(e)).Int()
	switch {
	case err != nil:
		log.Log(ctx, slog.LevelWarn, "give back interrupted attempt", "error", err)
	case n == 1:
		log.Log(ctx, slog.LevelInfo, "job attempt interrupted by shutdown; the job is pending again")
	}
}

// errFenced is the cause of a handler context cancelled because another
// worker holds the job now (see recovery.go).
var errFenced = errors.New("another worker holds the job now")

type reporter struct {
	w      *Worker
	keys   []string
	cancel context.CancelCauseFunc
}

func (r *reporter) ReportProgress(ctx context.Context, percent int, message string) error {
	if len(message) > 1024 {
		message = message[:1024]
	}
	n, err := progressScript.Run(ctx, r.w.rdb, r.keys, percent, message, micros(r.w.now()), r.w.id).Int()
	if err != nil {
		return fmt.Errorf("report progress: %w", err)
	}
	switch n {
	case 0: // the job is no longer RUNNING: it was cancelled
		r.cancel(errCancelled)
		return errCancelled
	case -1:
		r.cancel(errFenced)
		return errFenced
	}
	return nil
}

// Crash ends the worker process at once with SIGKILL, as an out-of-memory
// kill would, when the worker allows crash jobs (-allow-crash-jobs);
// otherwise it returns why not. It serves the simulate type's "crash"
// outcome, which tests how the fleet survives a job that kills its worker.
func (r *reporter) Crash() error {
	if !r.w.opts.AllowCrashJobs {
		return errors.New(`crash jobs are disabled on this worker: start it with -allow-crash-jobs (env JOBFORGE_ALLOW_CRASH_JOBS=true) to let a job end the process`)
	}
	r.w.log.Warn("a crash job is ending this worker process (SIGKILL)")
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal ends the process
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
