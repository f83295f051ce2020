package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
)

func newWatchCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "watch NAME|ID",
		Short: "Follow a job live until it ends",
		Long: `Follow a job's events until it ends: its state changes and progress (a progress
bar on a terminal, one line per event otherwise), then its result or error.
A dropped stream is resumed after the last event seen, without gaps or
repeats. Exits 1 when the job ends FAILED or CANCELLED. Ctrl-C stops
watching; the job goes on.

With -o json, every event is printed as one line of JSON (NDJSON).`,
		Example: `  jobctl watch jobs/0193e0c4-5b1e-7c2a-9f4e-2d6b8a1c3e5f
  jobctl watch 0193e0c4-5b1e-7c2a-9f4e-2d6b8a1c3e5f -o json | jq -c 'select(.kind=="PROGRESS") | .progress'`,
		Args: exactArgs("NAME|ID"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			name, err := resourceName("jobs", args[0])
			if err != nil {
				return err
			}
			c, err := o.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			return o.follow(cmd.Context(), c, name, true)
		}),
	}
}

// follow watches name until it ends and reports the outcome the way the
// output format asks. header says whether to introduce the job (watch) or
// not (submit/retry --wait, which printed it already).
func (o *options) follow(ctx context.Context, c *client, name string, header bool) error {
	var sink eventSink
	switch {
	case o.json() && header:
		sink = &jsonSink{out: o.stdout, errOut: o.stderr}
	case o.json():
		sink = &quietSink{errOut: o.stderr}
	default:
		sink = newTextSink(o.stdout, o.stderr, header, isTerminal(o.stdout) && o.getenv("TERM") != "dumb", o.getenv("COLUMNS"))
	}
	last, err := o.watchJob(ctx, c.jobs, name, sink)
	if err != nil {
		return err
	}
	state, job := last.GetState(), last.GetJob()
	if last.GetKind() == jobforgev1.JobEvent_SNAPSHOT {
		state = job.GetState()
	}
	if o.json() && !header {
		// submit/retry --wait -o json: the finished job.
		cctx, cancel := o.callCtx(ctx)
		defer cancel()
		j, err := c.jobs.GetJob(cctx, &jobforgev1.GetJobRequest{Name: name})
		if err != nil {
			return err
		}
		if err := printJSON(o.stdout, j); err != nil {
			return err
		}
		state, job = j.GetState(), j
	}
	switch state {
	case jobforgev1.Job_FAILED:
		e := last.GetError()
		if e == nil {
			e = job.GetError()
		}
		return &jobEndedError{name: name, state: state.String(), detail: e.GetMessage()}
	case jobforgev1.Job_CANCELLED:
		cn := job.GetCancellation()
		if cn == nil {
			// The event does not carry the reason; the job does.
			cctx, cancel := o.callCtx(ctx)
			defer cancel()
			if j, err := c.jobs.GetJob(cctx, &jobforgev1.GetJobRequest{Name: name}); err == nil {
				cn = j.GetCancellation()
			}
		}
		if cn != nil && !o.json() {
			fmt.Fprintf(o.stdout, "cancelled by %s: %s\n", cn.GetRequestedBy(), orNone(cn.GetReason()))
		}
		return &jobEndedError{name: name, state: state.String(), detail: cn.GetReason()}
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(no reason given)"
	}
	return s
}

// Resuming a dropped watch: retry with growing pauses for up to
// resumeWithin after the stream was lost. A stream that stayed open for
// steadyAfter or delivered an event counts as having worked, and resets
// the budget.
const (
	resumeWithin = time.Minute
	steadyAfter  = 10 * time.Second
	firstPause   = 100 * time.Millisecond
	longestPause = 3 * time.Second
)

// watchJob streams name's events into sink until the terminal event, which
// it returns. A stream that breaks before it is resumed with
// after_event_id set to the last event seen, so that no event is shown
// twice or missed.
func (o *options) watchJob(ctx context.Context, jobs jobforgev1.JobServiceClient, name string, sink eventSink) (*jobforgev1.JobEvent, error) {
	defer sink.close()
	var (
		lastID    string
		lostSince time.Time
		pause     = firstPause
	)
	for {
		started := time.Now()
		got := false
		end, err := watchOnce(ctx, jobs, name, lastID, func(ev *jobforgev1.JobEvent) {
			got = true
			lastID = ev.GetId()
			sink.event(ev)
		})
		if end != nil {
			return end, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: stopped watching %s; the job goes on (jobctl watch %s)", errInterrupted, name, name)
		}
		if lastID == "" || !resumable(err) {
			// A watch that never got an event has nothing to resume: the
			// address, the credentials or the job are wrong.
			return nil, err
		}
		if got || time.Since(started) >= steadyAfter {
			lostSince, pause = time.Time{}, firstPause
		}
		if lostSince.IsZero() {
			lostSince = time.Now()
			sink.notice("watch stream lost (%s); resuming after event %s", errText(err), lastID)
		} else if time.Since(lostSince) > resumeWithin {
			return nil, fmt.Errorf("watch %s: stream lost and not resumed within %s: %w", name, resumeWithin, err)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w: stopped watching %s; the job goes on (jobctl watch %s)", errInterrupted, name, name)
		case <-t.C:
		}
		pause = min(pause*2, longestPause)
	}
}

// watchOnce runs one WatchJob stream. It returns the terminal event, or
// the error that ended the stream before it (io.EOF for a clean end).
func watchOnce(ctx context.Context, jobs jobforgev1.JobServiceClient, name, after string, fn func(*jobforgev1.JobEvent)) (*jobforgev1.JobEvent, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream once the terminal event is in
	stream, err := jobs.WatchJob(sctx, &jobforgev1.WatchJobRequest{Name: name, AfterEventId: after})
	if err != nil {
		return nil, err
	}
	for {
		ev, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		fn(ev)
		if endsWatch(ev) {
			return ev, nil
		}
	}
}

// endsWatch reports whether ev is the job's last event.
func endsWatch(ev *jobforgev1.JobEvent) bool {
	if ev.GetKind() == jobforgev1.JobEvent_SNAPSHOT {
		return terminal(ev.GetJob().GetState())
	}
	return ev.GetKind() == jobforgev1.JobEvent_STATE_CHANGED && terminal(ev.GetState())
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

func errText(err error) string {
	if errors.Is(err, io.EOF) {
		return "server closed the stream"
	}
	if st, ok := status.FromError(err); ok {
		return fmt.Sprintf("%s: %s", st.Code(), st.Message())
	}
	return err.Error()
}

// eventSink shows a watch's events.
type eventSink interface {
	event(ev *jobforgev1.JobEvent)
	// notice reports something about the watch itself, on stderr.
	notice(format string, args ...any)
	// close is called once when the watch ends, however it ends.
	close()
}

// jsonSink prints every event as one line of protobuf JSON.
type jsonSink struct{ out, errOut io.Writer }

func (s *jsonSink) event(ev *jobforgev1.JobEvent) { _ = jsonLine(s.out, ev) }
func (s *jsonSink) notice(format string, args ...any) {
	fmt.Fprintf(s.errOut, "jobctl: "+format+"\n", args...)
}
func (s *jsonSink) close() {}

// quietSink shows nothing but notices (the finished job is printed after).
type quietSink struct{ errOut io.Writer }

func (s *quietSink) event(*jobforgev1.JobEvent) {}
func (s *quietSink) notice(format string, args ...any) {
	fmt.Fprintf(s.errOut, "jobctl: "+format+"\n", args...)
}
func (s *quietSink) close() {}

// textSink prints one line per state change and per progress report, or,
// on a terminal, keeps a progress bar on the last line.
type textSink struct {
	out, errOut io.Writer
	header      bool
	tty         bool
	cols        int
	maxAttempts int32
	barShown    bool // the cursor is at the end of a drawn progress bar
	lastPct     int32
	lastMsg     string
}

func newTextSink(out, errOut io.Writer, header, tty bool, columns string) *textSink {
	cols, err := strconv.Atoi(columns)
	if err != nil || cols < 40 {
		cols = 80
	}
	return &textSink{out: out, errOut: errOut, header: header, tty: tty, cols: cols}
}

func (s *textSink) event(ev *jobforgev1.JobEvent) {
	at := ev.GetTime().AsTime().Local().Format("15:04:05.000")
	switch ev.GetKind() {
	case jobforgev1.JobEvent_SNAPSHOT:
		j := ev.GetJob()
		s.maxAttempts = j.GetMaxAttempts()
		if s.header {
			s.line("%s  %s on queue %s", j.GetName(), j.GetType(), j.GetQueue())
		}
		s.stateLine(at, j.GetState(), j.GetAttempts(), nil)
		if p := j.GetProgress(); p != nil && !terminal(j.GetState()) {
			s.progress(at, p)
		}
		s.outcome(j.GetState(), j.GetResult().GetKind() != nil, valueJSON(j.GetResult()), j.GetError())
	case jobforgev1.JobEvent_STATE_CHANGED:
		s.stateLine(at, ev.GetState(), ev.GetAttempt(), ev.GetError())
		s.outcome(ev.GetState(), ev.GetResult().GetKind() != nil, valueJSON(ev.GetResult()), ev.GetError())
	case jobforgev1.JobEvent_PROGRESS:
		s.progress(at, ev.GetProgress())
	}
}

func (s *textSink) stateLine(at string, state jobforgev1.Job_State, attempt int32, e *jobforgev1.JobError) {
	switch {
	case state == jobforgev1.Job_RETRYING && e != nil:
		s.line("%s  %-9s  attempt %d failed: %s", at, state, e.GetAttempt(), e.GetMessage())
	case state == jobforgev1.Job_RUNNING && s.maxAttempts > 0:
		s.line("%s  %-9s  attempt %d of %d", at, state, attempt, s.maxAttempts)
	case state == jobforgev1.Job_RUNNING:
		s.line("%s  %-9s  attempt %d", at, state, attempt)
	default:
		s.line("%s  %s", at, state)
	}
}

// outcome prints the result or error of a terminal state.
func (s *textSink) outcome(state jobforgev1.Job_State, hasResult bool, result string, e *jobforgev1.JobError) {
	switch state {
	case jobforgev1.Job_SUCCEEDED:
		if hasResult {
			s.line("result: %s", result)
		}
	case jobforgev1.Job_FAILED:
		if e != nil {
			perm := ""
			if e.GetPermanent() {
				perm = " (permanent)"
			}
			s.line("error: attempt %d: %s%s", e.GetAttempt(), e.GetMessage(), perm)
		}
	}
}

func (s *textSink) progress(at string, p *jobforgev1.Progress) {
	s.lastPct, s.lastMsg = p.GetPercent(), p.GetMessage()
	if !s.tty {
		s.line("%s  %3d%%  %s", at, p.GetPercent(), p.GetMessage())
		return
	}
	s.drawBar()
}

// barWidth is the number of cells of the progress bar.
const barWidth = 30

// drawBar redraws the progress bar in place on the current line.
func (s *textSink) drawBar() {
	text := progressBar(s.lastPct, barWidth) + fmt.Sprintf(" %3d%%  %s", s.lastPct, strings.TrimSpace(s.lastMsg))
	fmt.Fprint(s.out, "\r\033[K"+truncate(text, s.cols-1))
	s.barShown = true
}

// progressBar renders percent (0-100) as width cells.
func progressBar(percent int32, width int) string {
	percent = max(0, min(100, percent))
	filled := int(percent) * width / 100
	return "[" + strings.Repeat("█", filled) + strings.Repeat("░", width-filled) + "]"
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// line prints a full line, moving below a drawn bar first. The bar stays
// visible above the line: it shows how far the job got.
func (s *textSink) line(format string, args ...any) {
	s.endBar()
	fmt.Fprintf(s.out, format+"\n", args...)
}

func (s *textSink) endBar() {
	if s.barShown {
		fmt.Fprintln(s.out)
		s.barShown = false
	}
}

func (s *textSink) notice(format string, args ...any) {
	s.endBar()
	fmt.Fprintf(s.errOut, "jobctl: "+format+"\n", args...)
}

func (s *textSink) close() { s.endBar() }

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
