package queue

import (
	"context"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/jobforge/jobforge/internal/store"
)

// Telemetry of job attempts. The API injects the trace context of the
// request that creates a job into the job's task headers; the worker
// extracts it, so each attempt's span is a child of that request's span and
// the whole life of a job is one trace. Only W3C trace context travels with
// a job: client-supplied baggage is not stored in Redis.

// headerDue is the Unix time in milliseconds at which a task became (or
// becomes) due, the start of its queue wait.
const headerDue = "jf-due-ms"

func taskPropagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

// annotateTask adds the telemetry headers of a new task: the caller's trace
// context and when the task is due (its schedule time, or now).
func annotateTask(ctx context.Context, headers *taskHeaders, scheduled, now time.Time) {
	taskPropagator().Inject(ctx, headers)
	due := now
	if scheduled.After(now) {
		due = scheduled
	}
	headers.Set(headerDue, strconv.FormatInt(due.UnixMilli(), 10))
}

type attemptKey struct{}

// attemptTelemetry follows one attempt from the moment a worker slot takes
// the task until its outcome is recorded.
type attemptTelemetry struct {
	typ, queue string // metric labels (bounded)
	retried    int    // asynq's retry count: 0 on the first run of a task
	due        time.Time
	span       trace.Span
	started    time.Time // set when the job is marked RUNNING
}

// instrument wraps the handler of one pool: slot accounting, the attempt's
// span (a child of the trace that created the job) and the per-attempt
// state that attemptStarted and attemptFinished complete.
func (w *Worker) instrument(pool Pool, next asynq.Handler) asynq.Handler {
	var busy interface {
		Inc()
		Dec()
	}
	if m := w.opts.Metrics; m != nil {
		m.slots.WithLabelValues(pool.Name).Set(float64(pool.Concurrency))
		g := m.slotsBusy.WithLabelValues(pool.Name)
		g.Set(0)
		busy = g
	}
	tp := w.opts.TracerProvider
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	tracer := tp.Tracer("github.com/jobforge/jobforge/internal/queue")
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		if busy != nil {
			busy.Inc()
			defer busy.Dec()
		}
		a := &attemptTelemetry{typ: t.Type()}
		if _, ok := w.reg.Lookup(a.typ); !ok {
			a.typ = unknownType
		}
		a.queue, _ = asynq.GetQueueName(ctx)
		a.retried, _ = asynq.GetRetryCount(ctx)
		if ms, err := strconv.ParseInt(t.Headers()[headerDue], 10, 64); err == nil {
			a.due = time.UnixMilli(ms)
		}
		id, _ := asynq.GetTaskID(ctx)
		ctx = taskPropagator().Extract(ctx, propagation.MapCarrier(t.Headers()))
		ctx, a.span = tracer.Start(ctx, "job "+a.typ,
			trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(
				attribute.String("messaging.system", "asynq"),
				attribute.String("messaging.operation.type", "process"),
				attribute.String("messaging.destination.name", a.queue),
				attribute.String("messaging.message.id", id),
				attribute.String("jobforge.job.id", id),
				attribute.String("jobforge.job.type", a.typ),
				attribute.String("jobforge.worker.pool", pool.Name),
			))
		defer a.span.End()
		err := next.ProcessTask(context.WithValue(ctx, attemptKey{}, a), t)
		if err != nil {
			a.span.SetStatus(codes.Error, err.Error())
		}
		return err
	})
}

func attemptOf(ctx context.Context) *attemptTelemetry {
	a, _ := ctx.Value(attemptKey{}).(*attemptTelemetry)
	return a
}

// attemptStarted is called once the job's record is RUNNING.
func (w *Worker) attemptStarted(ctx context.Context, attempt int) {
	a := attemptOf(ctx)
	if a == nil {
		return
	}
	a.started = w.now()
	a.span.SetAttributes(attribute.Int("jobforge.job.attempt", attempt))
	if m := w.opts.Metrics; m != nil {
		m.started.WithLabelValues(a.typ, a.queue).Inc()
		if a.retried == 0 && !a.due.IsZero() {
			m.queueWait.WithLabelValues(a.typ).Observe(max(a.started.Sub(a.due).Seconds(), 0))
		}
	}
}

// attemptFinished is called once the outcome of an attempt is recorded:
// SUCCEEDED, RETRYING or FAILED.
func (w *Worker) attemptFinished(ctx context.Context, state store.State) {
	a := attemptOf(ctx)
	if a == nil {
		return
	}
	a.span.SetAttributes(attribute.String("jobforge.job.outcome", string(state)))
	m := w.opts.Metrics
	if m == nil {
		return
	}
	switch state {
	case store.StateSucceeded:
		m.succeeded.WithLabelValues(a.typ, a.queue).Inc()
	case store.StateRetrying:
		m.retried.WithLabelValues(a.typ, a.queue).Inc()
	case store.StateFailed:
		m.failed.WithLabelValues(a.typ, a.queue).Inc()
	}
	if !a.started.IsZero() {
		m.runDuration.WithLabelValues(a.typ).Observe(w.now().Sub(a.started).Seconds())
	}
}
