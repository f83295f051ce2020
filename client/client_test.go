package client_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/client"
	"github.com/jobforge/jobforge/internal/proctest"
)

// unique returns a string no other test or run uses, for labels and
// idempotency keys.
func unique(t *testing.T) string {
	t.Helper()
	return strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatInt(seq.Add(1), 36)
}

var seq atomic.Int64

// TestSubmit checks that what Submit's options say reaches the server.
func TestSubmit(t *testing.T) {
	t.Parallel()
	c := dial(t)
	ctx := testContext(t)
	at := time.Now().Add(time.Hour).Truncate(time.Second)
	for _, tc := range []struct {
		name    string
		jobType string
		payload any
		opts    []client.SubmitOption
		check   func(t *testing.T, j *jobforgev1.Job)
	}{
		{
			name: "defaults of the type", jobType: "primes", payload: map[string]int{"limit": 10},
			check: func(t *testing.T, j *jobforgev1.Job) {
				require.Equal(t, "cpu", j.GetQueue())
				require.Equal(t, jobforgev1.Job_PENDING, j.GetState())
				require.Equal(t, map[string]any{"limit": 10.0}, j.GetPayload().AsMap())
			},
		},
		{
			name: "every option", jobType: "simulate", payload: struct {
				Outcome string `json:"outcome"`
			}{"succeed"},
			opts: []client.SubmitOption{client.Queue("low"), client.MaxAttempts(7), client.AttemptTimeout(90 * time.Second),
				client.Labels(map[string]string{"team": "data"}), client.ScheduleAt(at),
				client.RetryPolicy(&jobforgev1.RetryPolicy{Multiplier: 3})},
			check: func(t *testing.T, j *jobforgev1.Job) {
				require.Equal(t, "low", j.GetQueue())
				require.Equal(t, int32(7), j.GetMaxAttempts())
				require.Equal(t, 90*time.Second, j.GetTimeout().AsDuration())
				require.Equal(t, map[string]string{"team": "data"}, j.GetLabels())
				require.Equal(t, jobforgev1.Job_SCHEDULED, j.GetState())
				require.WithinDuration(t, at, j.GetScheduleTime().AsTime(), 0)
				require.Equal(t, map[string]any{"outcome": "succeed"}, j.GetPayload().AsMap())
			},
		},
		{
			name: "delay", jobType: "simulate", opts: []client.SubmitOption{client.Delay(time.Hour)},
			check: func(t *testing.T, j *jobforgev1.Job) {
				require.Equal(t, jobforgev1.Job_SCHEDULED, j.GetState())
				require.WithinDuration(t, j.GetCreateTime().AsTime().Add(time.Hour), j.GetScheduleTime().AsTime(), time.Second)
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j, err := client.Submit(ctx, c, tc.jobType, tc.payload, tc.opts...)
			require.NoError(t, err)
			require.Regexp(t, `^jobs/[0-9a-f-]+$`, j.GetName())
			require.Equal(t, tc.jobType, j.GetType())
			tc.check(t, j)
			if j.GetState() == jobforgev1.Job_SCHEDULED {
				_, err := c.Cancel(ctx, j.GetName(), "test over")
				require.NoError(t, err)
			}
		})
	}
}

// TestIdempotencyKey checks that a repeated create returns the original
// job, and a different request with the same key is refused.
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	c := dial(t)
	ctx := testContext(t)
	key := client.IdempotencyKey("order-" + unique(t))
	first, err := client.Submit(ctx, c, "simulate", map[string]any{"result": 1}, key)
	require.NoError(t, err)
	again, err := client.Submit(ctx, c, "simulate", map[string]any{"result": 1}, key)
	require.NoError(t, err)
	require.Equal(t, first.GetName(), again.GetName())

	_, err = client.Submit(ctx, c, "simulate", map[string]any{"result": 2}, key)
	require.ErrorIs(t, err, client.ErrAlreadyExists)
	var e *client.Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, "IDEMPOTENCY_KEY_REUSED", e.Reason)
	require.Equal(t, first.GetName(), e.Metadata["job"])
}

// TestErrors checks the typed errors of the server's refusals.
func TestErrors(t *testing.T) {
	t.Parallel()
	c := dial(t)
	ctx := testContext(t)
	done, err := client.Submit(ctx, c, "simulate", struct{}{})
	require.NoError(t, err)
	done, err = c.Wait(ctx, done.GetName())
	require.NoError(t, err)
	require.Equal(t, jobforgev1.Job_SUCCEEDED, done.GetState())

	for _, tc := range []struct {
		name       string
		call       func(ctx context.Context, c *client.Client) error
		sentinel   error
		code       codes.Code
		reason     string
		violations []string // field: description
		metadata   map[string]string
	}{
		{
			name: "unknown type",
			call: func(ctx context.Context, c *client.Client) error {
				_, err := client.Submit(ctx, c, "nope", struct{}{})
				return err
			},
			sentinel: client.ErrInvalidArgument, code: codes.InvalidArgument, reason: "INVALID_ARGUMENT",
		},
		{
			name: "payload that does not match the schema",
			call: func(ctx context.Context, c *client.Client) error {
				_, err := client.Submit(ctx, c, "simulate", map[string]any{"outcome": "maybe", "fail_times": -1})
				return err
			},
			sentinel: client.ErrInvalidArgument, code: codes.InvalidArgument, reason: "INVALID_ARGUMENT",
			violations: []string{"job.payload.fail_times: must be at least 0, got -1", `job.payload.outcome: must be one of "succeed", "fail", "panic", "crash", got "maybe"`},
		},
		{
			name: "bad filter",
			call: func(ctx context.Context, c *client.Client) error {
				_, err := c.ListPage(ctx, client.ListOptions{Filter: "colour = red"})
				return err
			},
			sentinel: client.ErrInvalidArgument, code: codes.InvalidArgument, reason: "INVALID_ARGUMENT",
		},
		{
			name: "unknown job",
			call: func(ctx context.Context, c *client.Client) error {
				_, err := c.Get(ctx, "0193e0c4-5b1e-7c2a-9f4e-2d6b8a1c3e5f")
				return err
			},
			sentinel: client.ErrNotFound, code: codes.NotFound, reason: "JOB_NOT_FOUND",
		},
		{
			name: "cancel a finished job",
			call: func(ctx context.Context, c *client.Client) error {
				_, err := c.Cancel(ctx, done.GetName(), "")
				return err
			},
			sentinel: client.ErrFailedPrecondition, code: codes.FailedPrecondition, reason: "JOB_STATE_CONFLICT",
			metadata: map[string]string{"state": "SUCCEEDED"},
		},
		{
			name:     "retry a job that succeeded",
			call:     func(ctx context.Context, c *client.Client) error { _, err := c.Retry(ctx, done.GetName()); return err },
			sentinel: client.ErrFailedPrecondition, code: codes.FailedPrecondition, reason: "JOB_STATE_CONFLICT",
			metadata: map[string]string{"state": "SUCCEEDED"},
		},
		{
			name: "wrong token",
			call: func(ctx context.Context, _ *client.Client) error {
				_, err := dialAt(t, server.addr, client.WithToken("jfk_nobody.wrong")).Get(ctx, done.GetName())
				return err
			},
			sentinel: client.ErrUnauthenticated, code: codes.Unauthenticated,
		},
		{
			name: "no token",
			call: func(ctx context.Context, _ *client.Client) error {
				_, err := dialAt(t, server.addr).Get(ctx, done.GetName())
				return err
			},
			sentinel: client.ErrUnauthenticated, code: codes.Unauthenticated,
		},
		{
			name: "nothing listening",
			call: func(ctx context.Context, _ *client.Client) error {
				_, err := dialAt(t, fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(t))).Get(ctx, done.GetName())
				return err
			},
			sentinel: client.ErrUnavailable, code: codes.Unavailable,
		},
		{
			name: "TLS unless told otherwise",
			call: func(ctx context.Context, _ *client.Client) error {
				tlsClient, err := client.Dial(ctx, server.addr, client.WithToken(server.token))
				require.NoError(t, err)
				defer tlsClient.Close()
				_, err = tlsClient.Get(ctx, done.GetName())
				return err
			},
			sentinel: client.ErrUnavailable, code: codes.Unavailable,
		},
		{
			name: "call timeout",
			call: func(ctx context.Context, _ *client.Client) error {
				_, err := dial(t, client.WithTimeout(time.Nanosecond)).Get(ctx, done.GetName())
				return err
			},
			sentinel: context.DeadlineExceeded, code: codes.DeadlineExceeded,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.call(ctx, c)
			require.ErrorIs(t, err, tc.sentinel)
			var e *client.Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, tc.code, e.Code, e.Message)
			if tc.reason != "" {
				require.Equal(t, tc.reason, e.Reason)
			}
			var violations []string
			for _, v := range e.FieldViolations {
				violations = append(violations, v.GetField()+": "+v.GetDescription())
			}
			if tc.violations != nil {
				require.ElementsMatch(t, tc.violations, violations)
			}
			for k, v := range tc.metadata {
				require.Equal(t, v, e.Metadata[k], "metadata %s", k)
			}
		})
	}
}

// TestConn checks that calls through Conn carry the token and return
// typed errors.
func TestConn(t *testing.T) {
	t.Parallel()
	c := dial(t)
	ctx := testContext(t)
	queues, err := jobforgev1.NewQueueServiceClient(c.Conn()).ListQueues(ctx, &jobforgev1.ListQueuesRequest{})
	require.NoError(t, err)
	require.NotEmpty(t, queues.GetQueues())
	_, err = jobforgev1.NewQueueServiceClient(c.Conn()).PauseQueue(ctx, &jobforgev1.PauseQueueRequest{Name: "queues/nope"})
	require.ErrorIs(t, err, client.ErrNotFound)
}

// TestList checks that List goes through every page, newest first, and
// stops when the loop does.
func TestList(t *testing.T) {
	t.Parallel()
	c := dial(t)
	ctx := testContext(t)
	run := unique(t)
	var names []string // newest first
	for range 5 {
		j, err := client.Submit(ctx, c, "simulate", struct{}{}, client.Labels(map[string]string{"run": run}))
		require.NoError(t, err)
		names = append([]string{j.GetName()}, names...)
	}
	filter := fmt.Sprintf("labels.run = %q", run)
	for _, tc := range []struct {
		name     string
		opts     client.ListOptions
		stopThen int // break after this many jobs (0: never)
		want     []string
	}{
		{name: "one page", opts: client.ListOptions{Filter: filter}, want: names},
		{name: "a job per page", opts: client.ListOptions{Filter: filter, PageSize: 1}, want: names},
		{name: "pages of two", opts: client.ListOptions{Filter: filter, PageSize: 2}, want: names},
		{name: "break early", opts: client.ListOptions{Filter: filter, PageSize: 2}, stopThen: 3, want: names[:3]},
		{name: "nothing matches", opts: client.ListOptions{Filter: fmt.Sprintf("labels.run = %q", "none-"+run)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for j, err := range c.List(ctx, tc.opts) {
				require.NoError(t, err)
				got = append(got, j.GetName())
				if len(got) == tc.stopThen {
					break
				}
			}
			require.Equal(t, tc.want, got)
		})
	}

	t.Run("iterating again starts again", func(t *testing.T) {
		t.Parallel()
		jobs := c.List(ctx, client.ListOptions{Filter: filter, PageSize: 2})
		for range 2 {
			var got []string
			for j, err := range jobs {
				require.NoError(t, err)
				got = append(got, j.GetName())
			}
			require.Equal(t, names, got)
		}
	})

	t.Run("ListPage and a page token", func(t *testing.T) {
		t.Parallel()
		page, err := c.ListPage(ctx, client.ListOptions{Filter: filter, PageSize: 3})
		require.NoError(t, err)
		require.Len(t, page.GetJobs(), 3)
		require.NotEmpty(t, page.GetNextPageToken())
		var rest []string
		for j, err := range c.List(ctx, client.ListOptions{Filter: filter, PageToken: page.GetNextPageToken()}) {
			require.NoError(t, err)
			rest = append(rest, j.GetName())
		}
		require.Equal(t, names[3:], rest)
	})

	t.Run("an error ends the iteration", func(t *testing.T) {
		t.Parallel()
		n := 0
		for j, err := range c.List(ctx, client.ListOptions{PageToken: "tampered"}) {
			n++
			require.Nil(t, j)
			require.ErrorIs(t, err, client.ErrInvalidArgument)
		}
		require.Equal(t, 1, n)
	})
}

// TestSubmitBatch checks per-item results, and that all-or-nothing
// creates nothing when an item is invalid.
func TestSubmitBatch(t *testing.T) {
	t.Parallel()
	c := dial(t)
	ctx := testContext(t)
	for _, tc := range []struct {
		name    string
		opts    []client.BatchOption
		created []bool
		errs    []error
	}{
		{name: "each item on its own", created: []bool{true, false, true}, errs: []error{nil, client.ErrInvalidArgument, nil}},
		{name: "all or nothing", opts: []client.BatchOption{client.AllOrNothing()}, created: []bool{false, false, false},
			errs: []error{client.ErrAborted, client.ErrInvalidArgument, client.ErrAborted}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			run := unique(t)
			labels := client.Labels(map[string]string{"run": run})
			results, err := c.SubmitBatch(ctx, []client.BatchItem{
				client.Item("primes", map[string]int{"limit": 100}, labels),
				client.Item("primes", map[string]int{"limit": 1}, labels),
				client.Item("report", map[string]int{"pages": 1}, labels, client.Queue("low")),
			}, tc.opts...)
			require.NoError(t, err)
			require.Len(t, results, 3)
			for i, r := range results {
				require.Equal(t, tc.created[i], r.Job != nil, "item %d: %v", i, r.Err)
				if tc.errs[i] == nil {
					require.NoError(t, r.Err)
					continue
				}
				require.ErrorIs(t, r.Err, tc.errs[i], "item %d", i)
				var e *client.Error
				require.ErrorAs(t, r.Err, &e)
			}
			var listed int
			for _, err := range c.List(ctx, client.ListOptions{Filter: fmt.Sprintf("labels.run = %q", run)}) {
				require.NoError(t, err)
				listed++
			}
			want := 0
			for _, created := range tc.created {
				if created {
					want++
				}
			}
			require.Equal(t, want, listed)
		})
	}
}

// TestWait checks Wait and Result for each way a job ends.
func TestWait(t *testing.T) {
	t.Parallel()
	c := dial(t)
	ctx := testContext(t)
	type simulateResult struct {
		Attempt int            `json:"attempt"`
		Echo    map[string]int `json:"echo"`
	}
	for _, tc := range []struct {
		name     string
		payload  map[string]any
		opts     []client.SubmitOption
		cancel   bool // cancel the job once it runs
		state    jobforgev1.Job_State
		result   simulateResult
		sentinel error
	}{
		{name: "succeeded", payload: map[string]any{"result": map[string]int{"n": 7}}, state: jobforgev1.Job_SUCCEEDED,
			result: simulateResult{Attempt: 1, Echo: map[string]int{"n": 7}}},
		{name: "succeeded after a retry", payload: map[string]any{"fail_times": 1}, opts: []client.SubmitOption{
			client.RetryPolicy(&jobforgev1.RetryPolicy{InitialBackoff: durationpb.New(10 * time.Millisecond)})},
			state: jobforgev1.Job_SUCCEEDED, result: simulateResult{Attempt: 2}},
		{name: "failed", payload: map[string]any{"outcome": "fail", "message": "disk on fire", "permanent": true},
			state: jobforgev1.Job_FAILED, sentinel: client.ErrJobFailed},
		{name: "cancelled", payload: map[string]any{"duration_millis": 600_000}, cancel: true,
			state: jobforgev1.Job_CANCELLED, sentinel: client.ErrJobCancelled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j, err := client.Submit(ctx, c, "simulate", tc.payload, tc.opts...)
			require.NoError(t, err)
			if tc.cancel {
				for ev, err := range c.Watch(ctx, j.GetName()) {
					require.NoError(t, err)
					if ev.GetState() == jobforgev1.Job_RUNNING || ev.GetJob().GetState() == jobforgev1.Job_RUNNING {
						break
					}
				}
				_, err := c.Cancel(ctx, j.GetName(), "enough")
				require.NoError(t, err)
			}
			final, err := c.Wait(ctx, j.GetName())
			require.NoError(t, err)
			require.Equal(t, tc.state, final.GetState())
			require.NotNil(t, final.GetEndTime(), "the whole job, not just the last event")
			res, err := client.Result[simulateResult](final)
			if tc.sentinel != nil {
				require.ErrorIs(t, err, tc.sentinel)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.result, res)

			again, err := c.Wait(ctx, strings.TrimPrefix(j.GetName(), "jobs/"), client.OnProgress(func(*jobforgev1.Progress) {}))
			require.NoError(t, err, "waiting for a job that has ended")
			require.Equal(t, final.GetName(), again.GetName())
			require.Equal(t, tc.state, again.GetState())
		})
	}

	t.Run("the context ends the wait", func(t *testing.T) {
		t.Parallel()
		j, err := client.Submit(ctx, c, "simulate", struct{}{}, client.Delay(time.Hour))
		require.NoError(t, err)
		t.Cleanup(func() { _, _ = c.Cancel(context.Background(), j.GetName(), "test over") })
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_, err = c.Wait(short, j.GetName(), client.OnResume(func(string, error) { t.Error("nothing to resume") }))
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
}
