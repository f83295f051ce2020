package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/catalog"
	"github.com/jobforge/jobforge/jobs"
)

// errGone ends a connection whose worker closed it or went silent.
var errGone = errors.New("remote worker gone")

// missedHeartbeats is how many heartbeat intervals a worker may be silent.
const missedHeartbeats = 3

// hello is a validated Hello.
type hello struct {
	name    string
	types   []jobs.RawSpec
	queues  map[string]int
	maxJobs int
}

func (h hello) names() []string {
	names := make([]string, len(h.types))
	for i, t := range h.types {
		names[i] = t.Name
	}
	return names
}

// workerName is what a worker may call itself.
var workerName = typeName

// parseHello validates a Hello and returns it with defaults applied, or
// the field violations that make it unusable.
func parseHello(m *jobforgev1.WorkRequest_Hello) (hello, []*errdetails.BadRequest_FieldViolation) {
	var vs []*errdetails.BadRequest_FieldViolation
	bad := func(field, format string, args ...any) {
		vs = append(vs, &errdetails.BadRequest_FieldViolation{Field: "hello." + field, Description: fmt.Sprintf(format, args...)})
	}
	h := hello{name: m.GetName(), maxJobs: int(m.GetMaxJobs()), queues: map[string]int{}}
	if h.name == "" {
		h.name = "remote"
	} else if len(h.name) > 64 {
		bad("name", "at most 64 characters")
	}
	if h.maxJobs < 1 || h.maxJobs > 10_000 {
		bad("max_jobs", "must be between 1 and 10000, got %d", h.maxJobs)
	}
	if len(m.GetJobTypes()) == 0 {
		bad("job_types", "declare at least one job type")
	}
	seen := map[string]bool{}
	for i, d := range m.GetJobTypes() {
		field := fmt.Sprintf("job_types[%d]", i)
		spec, err := rawSpec(d)
		switch {
		case !typeName.MatchString(d.GetName()):
			bad(field+".name", "must be 1-64 lowercase letters, digits, '_', '-' or '.', starting with a letter; got %q", d.GetName())
		case seen[d.GetName()]:
			bad(field+".name", "job type %q is declared twice", d.GetName())
		case err != nil:
			bad(field+".payload_schema", "%v", err)
		}
		seen[d.GetName()] = true
		h.types = append(h.types, spec)
	}
	for q, weight := range m.GetQueues() {
		if !typeName.MatchString(q) || weight < 1 {
			bad("queues", "queue %q: want a lowercase name and a weight of at least 1", q)
		}
		h.queues[q] = int(weight)
	}
	if len(h.queues) == 0 {
		for _, t := range h.types {
			h.queues[t.Queue] = 1
		}
	}
	for i, t := range h.types {
		if _, ok := h.queues[t.Queue]; !ok && len(vs) == 0 {
			bad(fmt.Sprintf("job_types[%d].queue", i), "queue %q is not among the queues this worker reads (%v)", t.Queue, slices.Sorted(mapsKeys(h.queues)))
		}
	}
	return h, vs
}

func mapsKeys(m map[string]int) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// rawSpec turns a declared job type into a RawSpec without its handler.
func rawSpec(d *jobforgev1.JobTypeDefinition) (jobs.RawSpec, error) {
	if d.GetPayloadSchema() == nil {
		return jobs.RawSpec{}, errors.New("required: the JSON Schema of the payload")
	}
	schema, err := protojson.Marshal(d.GetPayloadSchema())
	if err != nil {
		return jobs.RawSpec{}, err
	}
	validate, err := catalog.CompileSchema(schema)
	if err != nil {
		return jobs.RawSpec{}, err
	}
	var example json.RawMessage
	if d.GetExamplePayload() != nil {
		if example, err = protojson.Marshal(d.GetExamplePayload()); err != nil {
			return jobs.RawSpec{}, err
		}
	}
	queue := d.GetQueue()
	if queue == "" {
		queue = jobs.QueueDefault
	}
	if d.GetMaxAttempts() < 0 || d.GetMaxAttempts() > 100 {
		return jobs.RawSpec{}, fmt.Errorf("max_attempts must be between 0 and 100, got %d", d.GetMaxAttempts())
	}
	return jobs.RawSpec{
		Name: d.GetName(), Description: d.GetDescription(), Queue: queue,
		Timeout: d.GetTimeout().AsDuration(), MaxAttempts: int(d.GetMaxAttempts()), MaxPayloadBytes: int(d.GetMaxPayloadBytes()),
		Schema: schema, Example: example, Validate: validate,
	}, nil
}

// conn is one remote worker's stream: the jobs assigned to it and the
// messages it sends.
type conn struct {
	stream grpc.BidiStreamingServer[jobforgev1.WorkRequest, jobforgev1.WorkResponse]
	id     string
	log    *slog.Logger

	sendMu sync.Mutex
	mu     sync.Mutex
	slots  map[string]*slot // job id → its assigned attempt
}

// slot is one assigned attempt, waiting for its outcome.
type slot struct {
	attempt int32
	job     *jobs.Job
	ctx     context.Context
	done    chan *jobforgev1.WorkRequest_Outcome // buffered: the outcome, once
}

func newConn(_ context.Context, stream grpc.BidiStreamingServer[jobforgev1.WorkRequest, jobforgev1.WorkResponse], id string, log *slog.Logger) *conn {
	return &conn{stream: stream, id: id, log: log, slots: map[string]*slot{}}
}

func (c *conn) send(m *jobforgev1.WorkResponse) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.stream.Send(m)
}

// registry builds the connection's job types, each handled by forwarding
// the attempt to the remote worker.
func (c *conn) registry(specs []jobs.RawSpec) (*jobs.Registry, error) {
	types := make([]*jobs.Type, 0, len(specs))
	for _, s := range specs {
		s.Handle = c.handle
		t, err := jobs.DefineRaw(s)
		if err != nil {
			return nil, err
		}
		types = append(types, t)
	}
	return jobs.NewRegistry(types...)
}

// handle runs one attempt on the remote worker: it sends the assignment
// and waits for the outcome, or for the attempt's context to end (the job
// was cancelled, timed out, or the connection is shutting down), in which
// case it tells the worker to stop.
func (c *conn) handle(ctx context.Context, job *jobs.Job, payload json.RawMessage) (json.RawMessage, error) {
	var st structpb.Struct
	if err := protojson.Unmarshal(payload, &st); err != nil {
		return nil, jobs.Permanent(fmt.Errorf("payload is not a JSON object: %w", err))
	}
	s := &slot{attempt: int32(job.Attempt), job: job, ctx: ctx, done: make(chan *jobforgev1.WorkRequest_Outcome, 1)}
	c.mu.Lock()
	c.slots[job.ID] = s
	c.mu.Unlock()
	defer c.release(job.ID, s)

	a := &jobforgev1.WorkResponse_Assignment{
		JobId: job.ID, JobType: job.Type, Payload: &st, Attempt: s.attempt, MaxAttempts: int32(job.MaxAttempts),
	}
	if d, ok := ctx.Deadline(); ok {
		a.Deadline = timestamppb.New(d)
	}
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	a.Traceparent = carrier["traceparent"]
	if err := c.send(&jobforgev1.WorkResponse{Message: &jobforgev1.WorkResponse_Assignment_{Assignment: a}}); err != nil {
		<-ctx.Done() // the connection is ending: its worker shuts down and gives the attempt back
		return nil, ctx.Err()
	}
	select {
	case o := <-s.done:
		if f := o.GetFailure(); f != nil {
			err := errors.New(f.GetMessage())
			if f.GetPermanent() {
				err = jobs.Permanent(err)
			}
			return nil, err
		}
		return protojson.Marshal(o.GetResult())
	case <-ctx.Done():
		reason := "cancelled"
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			reason = "deadline exceeded"
		}
		c.release(job.ID, s) // an outcome from now on is refused
		_ = c.send(&jobforgev1.WorkResponse{Message: &jobforgev1.WorkResponse_Cancel_{Cancel: &jobforgev1.WorkResponse_Cancel{
			JobId: job.ID, Attempt: s.attempt, Reason: reason,
		}}})
		return nil, ctx.Err()
	}
}

// release forgets s if it is still the job's slot.
func (c *conn) release(id string, s *slot) {
	c.mu.Lock()
	if c.slots[id] == s {
		delete(c.slots, id)
	}
	c.mu.Unlock()
}

// take returns and forgets the slot of (id, attempt), if assigned.
func (c *conn) take(id string, attempt int32) *slot {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.slots[id]
	if s == nil || s.attempt != attempt {
		return nil
	}
	delete(c.slots, id)
	return s
}

func (c *conn) lookup(id string, attempt int32) *slot {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.slots[id]; s != nil && s.attempt == attempt {
		return s
	}
	return nil
}

// serve reads the worker's messages until the stream ends or the worker
// is silent for missedHeartbeats intervals.
func (c *conn) serve(ctx context.Context, interval time.Duration) error {
	msgs := make(chan *jobforgev1.WorkRequest)
	errs := make(chan error, 1)
	go func() {
		for {
			m, err := c.stream.Recv()
			if err != nil {
				errs <- err
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	silence := time.NewTimer(missedHeartbeats * interval)
	defer silence.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			if status.Code(err) == codes.Canceled || errors.Is(err, context.Canceled) {
				return errGone
			}
			return fmt.Errorf("%w: %w", errGone, err)
		case <-silence.C:
			return fmt.Errorf("%w: no message for %s", errGone, missedHeartbeats*interval)
		case m := <-msgs:
			silence.Reset(missedHeartbeats * interval)
			if err := c.handleMessage(m); err != nil {
				return err
			}
		}
	}
}

func (c *conn) handleMessage(m *jobforgev1.WorkRequest) error {
	switch m := m.GetMessage().(type) {
	case *jobforgev1.WorkRequest_Heartbeat_:
	case *jobforgev1.WorkRequest_Progress:
		p := m.Progress
		if s := c.lookup(p.GetJobId(), p.GetAttempt()); s != nil {
			if err := s.job.Progress(s.ctx, int(p.GetPercent()), p.GetMessage()); err != nil {
				c.log.Warn("record progress", "job_id", p.GetJobId(), "error", err)
			}
		} // progress of an attempt no longer assigned (cancelled, timed out) is dropped
	case *jobforgev1.WorkRequest_Outcome_:
		o := m.Outcome
		ack := &jobforgev1.WorkResponse_OutcomeAck{JobId: o.GetJobId(), Attempt: o.GetAttempt(), Accepted: true}
		if s := c.take(o.GetJobId(), o.GetAttempt()); s != nil {
			s.done <- o
		} else {
			ack.Accepted = false
			ack.Reason = fmt.Sprintf("attempt %d of job %s is not assigned to this worker: cancelled, timed out, given back or already reported", o.GetAttempt(), o.GetJobId())
		}
		return c.send(&jobforgev1.WorkResponse{Message: &jobforgev1.WorkResponse_OutcomeAck_{OutcomeAck: ack}})
	case *jobforgev1.WorkRequest_Hello_:
		return invalid(&errdetails.BadRequest_FieldViolation{Field: "hello", Description: "hello is only the first message"})
	default:
		return invalid(&errdetails.BadRequest_FieldViolation{Field: "message", Description: "empty or unknown message"})
	}
	return nil
}
