package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
)

func TestEncodePayload(t *testing.T) {
	t.Parallel()
	type typed struct {
		Limit int64             `json:"limit"`
		Name  string            `json:"name,omitempty"`
		Tags  map[string]string `json:"tags,omitempty"`
	}
	var nilMap map[string]any
	var nilTyped *typed
	for _, tc := range []struct {
		name    string
		payload any
		want    string // JSON of the Struct; "" for nil
		err     string // substring of the error
	}{
		{name: "struct with tags", payload: typed{Limit: 1000, Tags: map[string]string{"a": "b"}}, want: `{"limit":1000,"tags":{"a":"b"}}`},
		{name: "map", payload: map[string]any{"pages": 3, "title": "x"}, want: `{"pages":3,"title":"x"}`},
		{name: "raw JSON", payload: json.RawMessage(` {"limit": 5} `), want: `{"limit":5}`},
		{name: "Struct as is", payload: &structpb.Struct{Fields: map[string]*structpb.Value{"n": structpb.NewNumberValue(1)}}, want: `{"n":1}`},
		{name: "nil", payload: nil},
		{name: "nil map", payload: nilMap},
		{name: "nil pointer", payload: nilTyped},
		{name: "empty raw JSON", payload: json.RawMessage(nil)},
		{name: "2^53 is exact", payload: map[string]any{"n": int64(1) << 53}, want: `{"n":9007199254740992}`},
		{name: "floats may round", payload: json.RawMessage(`{"x":1e300,"y":0.1}`), want: `{"x":1e+300,"y":0.1}`},
		{name: "integer beyond 2^53", payload: typed{Limit: 1<<53 + 1}, err: "payload: limit: integer 9007199254740993 is beyond ±2^53"},
		{name: "nested integer beyond 2^53", payload: json.RawMessage(`{"a":{"b":[1,-9007199254740993]}}`), err: "payload: a.b[1]: integer -9007199254740993"},
		{name: "not an object", payload: []int{1, 2}, err: "payload: want a JSON object, got [1,2]"},
		{name: "a string", payload: "hello", err: `payload: want a JSON object, got "hello"`},
		{name: "invalid raw JSON", payload: json.RawMessage(`{limit: 5}`), err: "payload: invalid JSON"},
		{name: "two objects", payload: json.RawMessage(`{} {}`), err: "payload: want one JSON object, found more after it"},
		{name: "not encodable", payload: map[string]any{"c": make(chan int)}, err: "payload: json: unsupported type: chan int"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := encodePayload(tc.payload)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				require.ErrorIs(t, err, ErrInvalidArgument)
				var e *Error
				require.False(t, errors.As(err, &e), "a local error is no server *Error")
				return
			}
			require.NoError(t, err)
			if tc.want == "" {
				require.Nil(t, s)
				return
			}
			got, err := json.Marshal(s.AsMap())
			require.NoError(t, err)
			require.JSONEq(t, tc.want, string(got))
		})
	}
}

func TestSubmitOptions(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 24, 18, 0, 0, 0, time.UTC)
	policy := &jobforgev1.RetryPolicy{InitialBackoff: durationpb.New(time.Second), Multiplier: 3}
	for _, tc := range []struct {
		name string
		opts []SubmitOption
		want *jobforgev1.Job
	}{
		{name: "none", want: &jobforgev1.Job{Type: "t"}},
		{name: "queue, attempts, timeout, key", opts: []SubmitOption{Queue("low"), MaxAttempts(4), AttemptTimeout(90 * time.Second), IdempotencyKey("order-42")},
			want: &jobforgev1.Job{Type: "t", Queue: "low", MaxAttempts: 4, Timeout: durationpb.New(90 * time.Second), IdempotencyKey: "order-42"}},
		{name: "labels merge", opts: []SubmitOption{Labels(map[string]string{"a": "1", "b": "2"}), Labels(map[string]string{"b": "3"}), Labels(nil)},
			want: &jobforgev1.Job{Type: "t", Labels: map[string]string{"a": "1", "b": "3"}}},
		{name: "the last schedule wins", opts: []SubmitOption{Delay(time.Minute), ScheduleAt(at)},
			want: &jobforgev1.Job{Type: "t", ScheduleTime: timestamppb.New(at)}},
		{name: "delay", opts: []SubmitOption{ScheduleAt(at), Delay(time.Minute)},
			want: &jobforgev1.Job{Type: "t", ScheduleDelay: durationpb.New(time.Minute)}},
		{name: "retry policy", opts: []SubmitOption{RetryPolicy(policy)}, want: &jobforgev1.Job{Type: "t", RetryPolicy: policy}},
		{name: "an option of one's own", opts: []SubmitOption{func(j *jobforgev1.Job) { j.Queue = "critical" }},
			want: &jobforgev1.Job{Type: "t", Queue: "critical"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			job, err := newJob("t", nil, tc.opts)
			require.NoError(t, err)
			require.True(t, proto.Equal(tc.want, job), "got %v\nwant %v", job, tc.want)
		})
	}
}

func TestItemErrorIsReportedBySubmitBatch(t *testing.T) {
	t.Parallel()
	c := &Client{} // nothing is sent: the batch fails before
	_, err := c.SubmitBatch(t.Context(), []BatchItem{Item("t", map[string]any{}), Item("t", []int{1})})
	require.ErrorIs(t, err, ErrInvalidArgument)
	require.ErrorContains(t, err, "item 1: invalid argument: payload: want a JSON object")
	_, err = c.SubmitBatch(t.Context(), []BatchItem{{}})
	require.ErrorIs(t, err, ErrInvalidArgument)
}

func TestErrorFromStatus(t *testing.T) {
	t.Parallel()
	withDetails := func(code codes.Code, msg string, details ...protoadapt.MessageV1) error {
		st, err := status.New(code, msg).WithDetails(details...)
		require.NoError(t, err)
		return st.Err()
	}
	violations := []*errdetails.BadRequest_FieldViolation{
		{Field: "job.payload.limit", Description: "must be at least 2, got 1"},
		{Field: "job.queue", Description: "unknown queue"},
	}
	for _, tc := range []struct {
		name     string
		err      error
		sentinel error
		want     *Error // status is not compared
	}{
		{
			name: "invalid argument with violations",
			err: withDetails(codes.InvalidArgument, "job.payload.limit: must be at least 2, got 1 (and 1 more)",
				&errdetails.BadRequest{FieldViolations: violations},
				&errdetails.ErrorInfo{Reason: "INVALID_ARGUMENT", Domain: "jobforge.dev"}),
			sentinel: ErrInvalidArgument,
			want: &Error{Code: codes.InvalidArgument, Message: "job.payload.limit: must be at least 2, got 1 (and 1 more)",
				Reason: "INVALID_ARGUMENT", FieldViolations: violations},
		},
		{
			name: "quota with a retry delay",
			err: withDetails(codes.ResourceExhausted, "too many jobs waiting",
				&errdetails.ErrorInfo{Reason: "QUOTA_EXCEEDED", Metadata: map[string]string{"limit": "10"}},
				&errdetails.RetryInfo{RetryDelay: durationpb.New(5 * time.Second)}),
			sentinel: ErrResourceExhausted,
			want: &Error{Code: codes.ResourceExhausted, Message: "too many jobs waiting", Reason: "QUOTA_EXCEEDED",
				Metadata: map[string]string{"limit": "10"}, RetryDelay: 5 * time.Second},
		},
		{name: "not found", err: status.Error(codes.NotFound, "job gone"), sentinel: ErrNotFound,
			want: &Error{Code: codes.NotFound, Message: "job gone"}},
		{name: "already exists", err: status.Error(codes.AlreadyExists, "x"), sentinel: ErrAlreadyExists, want: &Error{Code: codes.AlreadyExists, Message: "x"}},
		{name: "failed precondition", err: status.Error(codes.FailedPrecondition, "x"), sentinel: ErrFailedPrecondition, want: &Error{Code: codes.FailedPrecondition, Message: "x"}},
		{name: "aborted", err: status.Error(codes.Aborted, "x"), sentinel: ErrAborted, want: &Error{Code: codes.Aborted, Message: "x"}},
		{name: "unauthenticated", err: status.Error(codes.Unauthenticated, "x"), sentinel: ErrUnauthenticated, want: &Error{Code: codes.Unauthenticated, Message: "x"}},
		{name: "permission denied", err: status.Error(codes.PermissionDenied, "x"), sentinel: ErrPermissionDenied, want: &Error{Code: codes.PermissionDenied, Message: "x"}},
		{name: "unavailable", err: status.Error(codes.Unavailable, "x"), sentinel: ErrUnavailable, want: &Error{Code: codes.Unavailable, Message: "x"}},
		{name: "internal", err: status.Error(codes.Internal, "x"), sentinel: ErrInternal, want: &Error{Code: codes.Internal, Message: "x"}},
		{name: "deadline", err: status.Error(codes.DeadlineExceeded, "x"), sentinel: context.DeadlineExceeded, want: &Error{Code: codes.DeadlineExceeded, Message: "x"}},
		{name: "cancelled", err: status.Error(codes.Canceled, "x"), sentinel: context.Canceled, want: &Error{Code: codes.Canceled, Message: "x"}},
		{name: "a code without a sentinel", err: status.Error(codes.Unimplemented, "x"), want: &Error{Code: codes.Unimplemented, Message: "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := convert(tc.err)
			var e *Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, tc.want.Code, e.Code)
			require.Equal(t, tc.want.Message, e.Message)
			require.Equal(t, tc.want.Reason, e.Reason)
			require.Equal(t, tc.want.Metadata, e.Metadata)
			require.Equal(t, tc.want.RetryDelay, e.RetryDelay)
			require.Len(t, e.FieldViolations, len(tc.want.FieldViolations))
			for i, v := range tc.want.FieldViolations {
				require.True(t, proto.Equal(v, e.FieldViolations[i]), "violation %d: %v", i, e.FieldViolations[i])
			}
			require.Equal(t, tc.want.Message+" ("+tc.want.Code.String()+")", err.Error())
			for _, s := range []error{ErrInvalidArgument, ErrNotFound, ErrAlreadyExists, ErrFailedPrecondition, ErrAborted,
				ErrUnauthenticated, ErrPermissionDenied, ErrResourceExhausted, ErrUnavailable, ErrInternal,
				context.Canceled, context.DeadlineExceeded} {
				require.Equal(t, s == tc.sentinel, errors.Is(err, s), "errors.Is(err, %v)", s)
			}
			// The status and its details stay reachable through gRPC's own helpers.
			st, ok := status.FromError(err)
			require.True(t, ok)
			require.True(t, proto.Equal(status.Convert(tc.err).Proto(), st.Proto()))
			require.Equal(t, tc.want.Code, status.Code(fmt.Errorf("wrapped: %w", err)))
			require.Same(t, err, convert(err), "converting twice changes nothing")
		})
	}
}

func TestConvertPassesOtherErrors(t *testing.T) {
	t.Parallel()
	for _, err := range []error{nil, io.EOF, fmt.Errorf("stream: %w", io.EOF), errors.New("not a status")} {
		require.Equal(t, err, convert(err))
	}
}

func TestResult(t *testing.T) {
	t.Parallel()
	type result struct {
		Count int `json:"count"`
	}
	value := func(s string) *structpb.Value {
		v := &structpb.Value{}
		require.NoError(t, v.UnmarshalJSON([]byte(s)))
		return v
	}
	for _, tc := range []struct {
		name     string
		job      *jobforgev1.Job
		want     result
		sentinel error
		err      string
	}{
		{name: "succeeded", job: &jobforgev1.Job{Name: "jobs/a", State: jobforgev1.Job_SUCCEEDED, Result: value(`{"count":168,"largest":997}`)},
			want: result{Count: 168}},
		{name: "succeeded without a result", job: &jobforgev1.Job{Name: "jobs/a", State: jobforgev1.Job_SUCCEEDED}},
		{name: "result of another shape", job: &jobforgev1.Job{Name: "jobs/a", State: jobforgev1.Job_SUCCEEDED, Result: value(`"done"`)},
			err: "result of job jobs/a: json: cannot unmarshal string"},
		{name: "failed", job: &jobforgev1.Job{Name: "jobs/a", State: jobforgev1.Job_FAILED, Error: &jobforgev1.JobError{Attempt: 3, Message: "disk on fire"}},
			sentinel: ErrJobFailed, err: "job jobs/a failed (attempt 3): disk on fire"},
		{name: "cancelled", job: &jobforgev1.Job{Name: "jobs/a", State: jobforgev1.Job_CANCELLED, Cancellation: &jobforgev1.Cancellation{Reason: "not needed"}},
			sentinel: ErrJobCancelled, err: "job jobs/a was cancelled: not needed"},
		{name: "cancelled without a reason", job: &jobforgev1.Job{Name: "jobs/a", State: jobforgev1.Job_CANCELLED},
			sentinel: ErrJobCancelled, err: "job jobs/a was cancelled"},
		{name: "running", job: &jobforgev1.Job{Name: "jobs/a", State: jobforgev1.Job_RUNNING},
			sentinel: ErrJobNotFinished, err: "job jobs/a has not finished: it is RUNNING"},
		{name: "no job", job: nil, sentinel: ErrJobNotFinished},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Result[result](tc.job)
			if tc.err == "" && tc.sentinel == nil {
				require.NoError(t, err)
				require.Equal(t, tc.want, got)
				return
			}
			require.Error(t, err)
			if tc.sentinel != nil {
				require.ErrorIs(t, err, tc.sentinel)
			}
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
			}
		})
	}
}

func TestJobNameAndTerminal(t *testing.T) {
	t.Parallel()
	require.Equal(t, "jobs/abc", jobName("abc"))
	require.Equal(t, "jobs/abc", jobName("jobs/abc"))
	for s, want := range map[jobforgev1.Job_State]bool{
		jobforgev1.Job_STATE_UNSPECIFIED: false, jobforgev1.Job_PENDING: false, jobforgev1.Job_SCHEDULED: false,
		jobforgev1.Job_RUNNING: false, jobforgev1.Job_RETRYING: false,
		jobforgev1.Job_SUCCEEDED: true, jobforgev1.Job_FAILED: true, jobforgev1.Job_CANCELLED: true,
	} {
		require.Equal(t, want, Terminal(s), s.String())
	}
}

// TestNoServerCode checks that the client pulls none of jobforge's server
// code into its users' binaries: of this module, only the generated API.
func TestNoServerCode(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	require.NoError(t, err)
	for _, pkg := range strings.Fields(string(out)) {
		if rest, ok := strings.CutPrefix(pkg, "github.com/jobforge/jobforge/"); ok {
			require.Contains(t, []string{"api/gen/jobforge/v1", "client"}, rest, "the client depends on %s", pkg)
		}
		require.NotContains(t, pkg, "github.com/hibiken/asynq")
		require.NotContains(t, pkg, "github.com/redis/go-redis")
	}
}
