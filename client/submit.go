package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
)

// Submit creates a job of jobType with payload and returns it, PENDING (or
// SCHEDULED, see [ScheduleAt] and [Delay]). Options the call leaves out take
// the job type's defaults.
//
// payload is encoded as JSON (encoding/json: struct tags apply) and must be
// a JSON object that matches the type's payload schema, else the call fails
// with [ErrInvalidArgument] and field violations naming the wrong fields. A
// nil map or pointer is sent as {}, and so is struct{}{}, the payload of a
// job that needs none. json.RawMessage is sent as written and
// *structpb.Struct as is. The API carries JSON numbers as doubles: integers
// beyond ±2^53 are refused before sending rather than rounded.
//
// Submit is a function, not a method, because Go methods cannot have type
// parameters: P is the payload's Go type, checked by the compiler at the
// call site, the counterpart of [Result] for the job's result.
func Submit[P any](ctx context.Context, c *Client, jobType string, payload P, opts ...SubmitOption) (*jobforgev1.Job, error) {
	job, err := newJob(jobType, payload, opts)
	if err != nil {
		return nil, err
	}
	return c.jobs.CreateJob(ctx, &jobforgev1.CreateJobRequest{Job: job})
}

// SubmitOption sets a field of the job [Submit] or [Item] sends. It is a
// plain function of the generated Job message, so a field without an
// option of its own can be set by one written inline.
type SubmitOption func(*jobforgev1.Job)

// Queue runs the job on queue instead of its type's default queue. Only
// queues the workers read are accepted.
func Queue(queue string) SubmitOption {
	return func(j *jobforgev1.Job) { j.Queue = queue }
}

// IdempotencyKey makes the create idempotent: a second create with the same
// key and the same request returns the original job instead of a new one;
// with a different request it fails with [ErrAlreadyExists]. Keys are
// remembered for the server's idempotency window (24h by default). Use one
// whenever a create may be retried after an error that left its outcome
// unknown ([ErrUnavailable], a deadline).
func IdempotencyKey(key string) SubmitOption {
	return func(j *jobforgev1.Job) { j.IdempotencyKey = key }
}

// MaxAttempts sets the attempts allowed in total, including the first (at
// most 100). 0 means the type's default.
func MaxAttempts(n int32) SubmitOption {
	return func(j *jobforgev1.Job) { j.MaxAttempts = n }
}

// AttemptTimeout sets the job's deadline for one attempt (up to 24h): the
// handler's context is cancelled when it passes. It is the job's timeout,
// not the request's (see [WithTimeout] for that).
func AttemptTimeout(d time.Duration) SubmitOption {
	return func(j *jobforgev1.Job) { j.Timeout = durationpb.New(d) }
}

// ScheduleAt makes the job due at t; a t in the past means now.
func ScheduleAt(t time.Time) SubmitOption {
	return func(j *jobforgev1.Job) { j.ScheduleTime, j.ScheduleDelay = timestamppb.New(t), nil }
}

// Delay makes the job due d after the server accepts it (measured by the
// server's clock, so the client's does not matter).
func Delay(d time.Duration) SubmitOption {
	return func(j *jobforgev1.Job) { j.ScheduleDelay, j.ScheduleTime = durationpb.New(d), nil }
}

// Labels adds key/value labels to the job (at most 16), for the caller's
// own bookkeeping and for [ListOptions.Filter] (labels.<key> = "value").
func Labels(labels map[string]string) SubmitOption {
	return func(j *jobforgev1.Job) {
		if len(labels) == 0 {
			return
		}
		if j.Labels == nil {
			j.Labels = make(map[string]string, len(labels))
		}
		for k, v := range labels {
			j.Labels[k] = v
		}
	}
}

// RetryPolicy sets how failed attempts are retried (backoff, growth,
// jitter); unset fields take the service's defaults.
func RetryPolicy(p *jobforgev1.RetryPolicy) SubmitOption {
	return func(j *jobforgev1.Job) { j.RetryPolicy = p }
}

// BatchItem is one job of a [Client.SubmitBatch] call, made by [Item].
type BatchItem struct {
	job *jobforgev1.Job
	err error
}

// Item is a job of jobType with payload for [Client.SubmitBatch]. The
// payload is encoded as by [Submit]; an encoding error is reported by
// SubmitBatch.
func Item[P any](jobType string, payload P, opts ...SubmitOption) BatchItem {
	job, err := newJob(jobType, payload, opts)
	return BatchItem{job: job, err: err}
}

// BatchOption configures [Client.SubmitBatch].
type BatchOption func(*jobforgev1.BatchCreateJobsRequest)

// AllOrNothing creates no job unless every item is valid: the invalid
// items report their errors and the valid ones [ErrAborted].
func AllOrNothing() BatchOption {
	return func(r *jobforgev1.BatchCreateJobsRequest) { r.AllOrNothing = true }
}

// BatchResult is the outcome of one [BatchItem]: exactly one of Job and Err
// is set.
type BatchResult struct {
	// Job is the created job (or, for a repeated idempotency key, the
	// original one).
	Job *jobforgev1.Job
	// Err is why the item was not created, an [*Error].
	Err error
}

// SubmitBatch creates up to 1000 jobs in one call, much faster per job than
// [Submit]. Each item is validated on its own and gets its own result, in
// the order of items. The error is for the call as a whole (it was refused,
// or an item's payload could not be encoded, in which case nothing was
// sent); a nil error does not mean every item was created.
func (c *Client) SubmitBatch(ctx context.Context, items []BatchItem, opts ...BatchOption) ([]BatchResult, error) {
	req := &jobforgev1.BatchCreateJobsRequest{Requests: make([]*jobforgev1.CreateJobRequest, len(items))}
	for i, it := range items {
		if it.err != nil {
			return nil, fmt.Errorf("item %d: %w", i, it.err)
		}
		if it.job == nil {
			return nil, fmt.Errorf("%w: item %d: not made by Item", ErrInvalidArgument, i)
		}
		req.Requests[i] = &jobforgev1.CreateJobRequest{Job: it.job}
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := c.jobs.BatchCreateJobs(ctx, req)
	if err != nil {
		return nil, err
	}
	if n := len(resp.GetResults()); n != len(items) {
		return nil, fmt.Errorf("client: batch of %d items answered with %d results", len(items), n)
	}
	out := make([]BatchResult, len(items))
	for i, r := range resp.GetResults() {
		out[i].Job = r.GetJob()
		if r.GetError() != nil {
			out[i] = BatchResult{Err: fromStatus(status.FromProto(r.GetError()))}
		}
	}
	return out, nil
}

// newJob builds the Job message of a create.
func newJob(jobType string, payload any, opts []SubmitOption) (*jobforgev1.Job, error) {
	p, err := encodePayload(payload)
	if err != nil {
		return nil, err
	}
	job := &jobforgev1.Job{Type: jobType, Payload: p}
	for _, o := range opts {
		o(job)
	}
	return job, nil
}

// maxExactInt is the largest integer a JSON number held as a double (the
// API's google.protobuf.Struct) represents exactly.
const maxExactInt = 1 << 53

// encodePayload turns a payload into the Struct the API carries: JSON
// (encoding/json), which must be an object with no integer a double would
// round. nil and JSON null are a nil Struct (the server's {}).
func encodePayload(v any) (*structpb.Struct, error) {
	var data []byte
	switch p := v.(type) {
	case *structpb.Struct:
		return p, nil
	case json.RawMessage:
		data = p
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("%w: payload: %w", ErrInvalidArgument, err)
		}
		data = b
	}
	if t := bytes.TrimSpace(data); len(t) == 0 || string(t) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var obj any
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("%w: payload: invalid JSON: %w", ErrInvalidArgument, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: payload: want one JSON object, found more after it", ErrInvalidArgument)
	}
	if _, ok := obj.(map[string]any); !ok {
		return nil, fmt.Errorf("%w: payload: want a JSON object, got %s", ErrInvalidArgument, abbreviate(data))
	}
	if err := checkNumbers("", obj); err != nil {
		return nil, fmt.Errorf("%w: payload: %w", ErrInvalidArgument, err)
	}
	s := &structpb.Struct{}
	if err := protojson.Unmarshal(data, s); err != nil {
		return nil, fmt.Errorf("%w: payload: %w", ErrInvalidArgument, err)
	}
	return s, nil
}

// checkNumbers refuses integers that a double would silently round.
func checkNumbers(path string, v any) error {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if err := checkNumbers(strings.TrimPrefix(path+"."+k, "."), e); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range v {
			if err := checkNumbers(fmt.Sprintf("%s[%d]", path, i), e); err != nil {
				return err
			}
		}
	case json.Number:
		if strings.ContainsAny(string(v), ".eE") {
			return nil // written as a float: rounding is expected
		}
		if i, err := v.Int64(); err != nil || i > maxExactInt || i < -maxExactInt {
			return fmt.Errorf("%s: integer %s is beyond ±2^53 and would be rounded", path, v)
		}
	}
	return nil
}

// abbreviate shortens JSON text for an error message.
func abbreviate(b []byte) string {
	s := string(bytes.TrimSpace(b))
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return s
}
