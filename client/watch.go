package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
)

// WatchOption configures [Client.Watch] and [Client.Wait].
type WatchOption func(*watchConfig)

type watchConfig struct {
	after    string
	progress func(*jobforgev1.Progress)
	resume   func(afterEventID string, cause error)
}

// OnProgress calls fn with each progress report of the job's handler, and
// first with the progress the job had when the watch started, if any (so
// the last call has the job's final progress, even for a job that had
// ended). fn runs on the watching goroutine: a slow fn delays the watch.
func OnProgress(fn func(*jobforgev1.Progress)) WatchOption {
	return func(c *watchConfig) { c.progress = fn }
}

// OnResume calls fn when a working stream is lost (the connection broke,
// the server restarted or shed load) and the watch is about to resume after
// event afterEventID; cause is why the stream ended. Reconnection attempts
// that fail are not reported, only the loss. For logs; nothing needs to be
// done.
func OnResume(fn func(afterEventID string, cause error)) WatchOption {
	return func(c *watchConfig) { c.resume = fn }
}

// AfterEvent starts the watch after the event with this id (a
// [jobforgev1.JobEvent] id seen earlier, perhaps by another process):
// only later events are delivered, without a first SNAPSHOT.
func AfterEvent(id string) WatchOption {
	return func(c *watchConfig) { c.after = id }
}

// Resuming a dropped watch: retry with growing pauses for up to
// resumeWithin after the stream was lost. A stream that stayed open for
// steadyAfter or delivered an event counts as having worked, and resets the
// budget.
const (
	resumeWithin = time.Minute
	steadyAfter  = 10 * time.Second
	firstPause   = 100 * time.Millisecond
	longestPause = 3 * time.Second
)

// errStreamEnded is a watch stream the server closed before the job's last
// event (it shut down, or a proxy cut the stream off).
var errStreamEnded = fmt.Errorf("server closed the stream: %w", io.EOF)

// Watch iterates over the job's events as they happen: a SNAPSHOT of the
// job first (unless [AfterEvent] is given), then every state change and
// progress report, ending after the event that puts the job in a terminal
// state (SUCCEEDED, FAILED or CANCELLED). A job that has already ended
// yields its SNAPSHOT and ends.
//
// A stream that breaks after it delivered an event (the connection was
// lost, the API restarted, the server shed load) is resumed after the last
// event seen, so the loop sees every event once and in order; see
// [OnResume]. Resuming gives up with the last error when no stream could be
// opened for a minute. Other errors (the job does not exist, the token is
// refused) end the iteration, as does ctx: the error is the last value
// yielded. Breaking out of the loop ends the watch; the job goes on either
// way.
//
//	for ev, err := range c.Watch(ctx, name) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(ev.GetKind(), ev.GetState(), ev.GetProgress().GetPercent())
//	}
func (c *Client) Watch(ctx context.Context, nameOrID string, opts ...WatchOption) iter.Seq2[*jobforgev1.JobEvent, error] {
	var cfg watchConfig
	for _, o := range opts {
		o(&cfg)
	}
	name := jobName(nameOrID)
	return func(yield func(*jobforgev1.JobEvent, error) bool) {
		var (
			lastID    = cfg.after
			lostSince time.Time
			pause     = firstPause
		)
		for {
			started := time.Now()
			got := false
			done, err := c.watchOnce(ctx, name, lastID, func(ev *jobforgev1.JobEvent) bool {
				got = true
				lastID = ev.GetId()
				cfg.report(ev)
				return yield(ev, nil)
			})
			switch {
			case done:
				return
			case ctx.Err() != nil:
				yield(nil, ctx.Err())
				return
			case status.Code(err) == codes.DeadlineExceeded && hasDeadline(ctx):
				// The caller's deadline, which the server enforces too: it
				// may end the stream a moment before the caller's timer.
				yield(nil, err)
				return
			case lastID == "" || !resumable(err) || c.conn.GetState() == connectivity.Shutdown:
				// A watch that never got an event has nothing to resume
				// from: the address, the token or the job is wrong. A
				// closed client has nothing to resume with.
				yield(nil, err)
				return
			}
			if got || time.Since(started) >= steadyAfter {
				lostSince, pause = time.Time{}, firstPause
			}
			if lostSince.IsZero() {
				lostSince = time.Now()
				if cfg.resume != nil {
					cfg.resume(lastID, err)
				}
			} else if time.Since(lostSince) > resumeWithin {
				yield(nil, fmt.Errorf("watch %s: stream lost and not resumed within %s: %w", name, resumeWithin, err))
				return
			}
			t := time.NewTimer(pause)
			select {
			case <-ctx.Done():
				t.Stop()
				yield(nil, ctx.Err())
				return
			case <-t.C:
			}
			pause = min(pause*2, longestPause)
		}
	}
}

// report passes the progress an event carries to the OnProgress function.
func (cfg *watchConfig) report(ev *jobforgev1.JobEvent) {
	if cfg.progress == nil {
		return
	}
	switch ev.GetKind() {
	case jobforgev1.JobEvent_PROGRESS:
		cfg.progress(ev.GetProgress())
	case jobforgev1.JobEvent_SNAPSHOT:
		if p := ev.GetJob().GetProgress(); p != nil {
			cfg.progress(p)
		}
	}
}

// watchOnce runs one WatchJob stream, passing each event to fn. done is
// true once the terminal event was passed or fn returned false; otherwise
// err is what ended the stream.
func (c *Client) watchOnce(ctx context.Context, name, after string, fn func(*jobforgev1.JobEvent) bool) (done bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream once the terminal event is in
	stream, err := c.jobs.WatchJob(sctx, &jobforgev1.WatchJobRequest{Name: name, AfterEventId: after})
	if err != nil {
		return false, err
	}
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return false, errStreamEnded
		}
		if err != nil {
			return false, err
		}
		if err := ctx.Err(); err != nil {
			// The caller's context ended: an event that was already
			// received is not passed on.
			return false, err
		}
		if c.conn.GetState() == connectivity.Shutdown {
			// Close was called: the same for a closed client.
			return false, convert(status.Error(codes.Canceled, "client closed"))
		}
		if !fn(ev) || endsWatch(ev) {
			return true, nil
		}
	}
}

// endsWatch reports whether ev is the job's last event.
func endsWatch(ev *jobforgev1.JobEvent) bool {
	if ev.GetKind() == jobforgev1.JobEvent_SNAPSHOT {
		return Terminal(ev.GetJob().GetState())
	}
	return ev.GetKind() == jobforgev1.JobEvent_STATE_CHANGED && Terminal(ev.GetState())
}

func hasDeadline(ctx context.Context) bool {
	_, ok := ctx.Deadline()
	return ok
}

// resumable reports whether a watch that ended with err should be resumed:
// the connection or the server went away, or the server ended the stream
// early (shutting down, or shedding load).
func resumable(err error) bool {
	if errors.Is(err, io.EOF) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted, codes.Aborted, codes.Canceled, codes.DeadlineExceeded:
		return true
	}
	return false
}

// Terminal reports whether a job in state s has ended: SUCCEEDED, FAILED
// or CANCELLED. A terminal job changes no more (unless retried).
func Terminal(s jobforgev1.Job_State) bool {
	return s == jobforgev1.Job_SUCCEEDED || s == jobforgev1.Job_FAILED || s == jobforgev1.Job_CANCELLED
}

// Wait waits until the job ends and returns it as it ended: SUCCEEDED,
// FAILED or CANCELLED. Use [Result] for its result, [OnProgress] to follow
// it. It watches the job (see [Client.Watch], whose resuming it shares)
// rather than polling, so it learns of the end at once.
//
// The error is about waiting, not about the job: a job that FAILED is
// returned with a nil error. ctx bounds the wait; the job goes on when it
// is done.
func (c *Client) Wait(ctx context.Context, nameOrID string, opts ...WatchOption) (*jobforgev1.Job, error) {
	var last *jobforgev1.JobEvent
	for ev, err := range c.Watch(ctx, nameOrID, opts...) {
		if err != nil {
			return nil, err
		}
		last = ev
	}
	if last.GetKind() == jobforgev1.JobEvent_SNAPSHOT {
		return last.GetJob(), nil // it had ended already
	}
	// The terminal event carries the state and outcome, not the whole
	// job (its cancellation, its final times): read it.
	return c.Get(ctx, nameOrID)
}
