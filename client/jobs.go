package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
)

// jobName returns the resource name of a job given as "jobs/{id}" or as
// its bare id.
func jobName(nameOrID string) string {
	if strings.HasPrefix(nameOrID, "jobs/") {
		return nameOrID
	}
	return "jobs/" + nameOrID
}

// Get returns the job's current state: progress, result, last error,
// attempts and times. nameOrID is the job's name (jobs/{id}) or its id.
// It fails with [ErrNotFound] once the job's retention has passed.
func (c *Client) Get(ctx context.Context, nameOrID string) (*jobforgev1.Job, error) {
	return c.jobs.GetJob(ctx, &jobforgev1.GetJobRequest{Name: jobName(nameOrID)})
}

// Cancel cancels a job that has not finished and returns it, CANCELLED.
// A job that is running is stopped (its handler's context is cancelled) and
// not retried. reason is recorded on the job. Cancelling a finished job
// fails with [ErrFailedPrecondition].
func (c *Client) Cancel(ctx context.Context, nameOrID, reason string) (*jobforgev1.Job, error) {
	return c.jobs.CancelJob(ctx, &jobforgev1.CancelJobRequest{Name: jobName(nameOrID), Reason: reason})
}

// Retry runs a FAILED or CANCELLED job again, under the same name with a
// fresh budget of attempts, and returns it. Other states fail with
// [ErrFailedPrecondition].
func (c *Client) Retry(ctx context.Context, nameOrID string) (*jobforgev1.Job, error) {
	return c.jobs.RetryJob(ctx, &jobforgev1.RetryJobRequest{Name: jobName(nameOrID)})
}

// ListOptions select the jobs of [Client.List] and [Client.ListPage].
// The zero value lists all of the tenant's jobs.
type ListOptions struct {
	// Filter is a conjunction (AND) of comparisons: state, type, queue and
	// labels.<key> with = or !=, and create_time with <, <=, >, >= against
	// an RFC 3339 time, e.g.
	//	state = FAILED AND labels.team = "data" AND create_time > "2026-01-01T00:00:00Z"
	Filter string
	// PageSize is the number of jobs fetched per call: 0 for the server's
	// default (50), at most 1000.
	PageSize int32
	// PageToken continues a listing from the page a previous
	// [Client.ListPage] call named; the filter must be the same.
	PageToken string
}

// List iterates over the jobs that opts select, newest first, fetching
// page after page as the loop goes on. An error ends the iteration; it is
// the last value yielded.
//
//	for job, err := range c.List(ctx, client.ListOptions{Filter: "state = FAILED"}) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(job.GetName())
//	}
func (c *Client) List(ctx context.Context, opts ListOptions) iter.Seq2[*jobforgev1.Job, error] {
	return func(yield func(*jobforgev1.Job, error) bool) {
		opts := opts // each iteration starts from the first page
		for {
			page, err := c.ListPage(ctx, opts)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, j := range page.GetJobs() {
				if !yield(j, nil) {
					return
				}
			}
			// Only an empty token means the end: a page may hold fewer
			// jobs than PageSize, even none, when more follow.
			if opts.PageToken = page.GetNextPageToken(); opts.PageToken == "" {
				return
			}
		}
	}
}

// ListPage returns one page of the jobs opts select, newest first, and the
// token of the next page (empty at the end), for callers that page
// themselves, such as a UI. [Client.List] does it for them.
func (c *Client) ListPage(ctx context.Context, opts ListOptions) (*jobforgev1.ListJobsResponse, error) {
	return c.jobs.ListJobs(ctx, &jobforgev1.ListJobsRequest{Filter: opts.Filter, PageSize: opts.PageSize, PageToken: opts.PageToken})
}

// Errors of [Result] for a job that did not succeed.
var (
	// ErrJobFailed: the job ended FAILED; job.GetError() has the last
	// attempt's error.
	ErrJobFailed = errors.New("job failed")
	// ErrJobCancelled: the job ended CANCELLED; job.GetCancellation()
	// says by whom and why.
	ErrJobCancelled = errors.New("job cancelled")
	// ErrJobNotFinished: the job has not ended yet (see [Client.Wait]).
	ErrJobNotFinished = errors.New("job not finished")
)

// Result decodes the result of a SUCCEEDED job into R with encoding/json
// (fields the result has and R lacks are ignored). For a job in any other
// state it returns [ErrJobFailed], [ErrJobCancelled] or
// [ErrJobNotFinished], wrapped with what the job says.
func Result[R any](job *jobforgev1.Job) (R, error) {
	var r R
	switch job.GetState() {
	case jobforgev1.Job_SUCCEEDED:
	case jobforgev1.Job_FAILED:
		e := job.GetError()
		return r, &outcomeError{ErrJobFailed, fmt.Sprintf("job %s failed (attempt %d): %s", job.GetName(), e.GetAttempt(), e.GetMessage())}
	case jobforgev1.Job_CANCELLED:
		text := fmt.Sprintf("job %s was cancelled", job.GetName())
		if reason := job.GetCancellation().GetReason(); reason != "" {
			text += ": " + reason
		}
		return r, &outcomeError{ErrJobCancelled, text}
	default:
		return r, &outcomeError{ErrJobNotFinished, fmt.Sprintf("job %s has not finished: it is %s", job.GetName(), job.GetState())}
	}
	if job.GetResult() == nil {
		return r, nil
	}
	b, err := protojson.Marshal(job.GetResult())
	if err != nil {
		return r, fmt.Errorf("result of job %s: %w", job.GetName(), err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("result of job %s: %w", job.GetName(), err)
	}
	return r, nil
}

// outcomeError is a job's unsuccessful end, matching its sentinel.
type outcomeError struct {
	sentinel error
	text     string
}

func (e *outcomeError) Error() string { return e.text }
func (e *outcomeError) Unwrap() error { return e.sentinel }
