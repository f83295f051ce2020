package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/client"
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
			c, err := o.dial(cmd.Context())
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
func (o *options) follow(ctx context.Context, c *client.Client, name string, header bool) error {
	var sink eventSink
	switch {
	case o.json() && header:
		sink = &jsonSink{out: o.stdout, errOut: o.stderr}
	case o.json():
		sink = &quietSink{errOut: o.stderr}
	default:
		sink = newTextSink(o.stdout, o.stderr, header, isTerminal(o.stdout) && o.getenv("TERM") != "dumb", o.getenv("COLUMNS"))
	}
	last, err := watchJob(ctx, c, name, sink)
	if err != nil {
		return err
	}
	state, job := last.GetState(), last.GetJob()
	if last.GetKind() == jobforgev1.JobEvent_SNAPSHOT {
		state = job.GetState()
	}
	if o.json() && !header {
		// submit/retry --wait -o json: the finished job.
		j, err := c.Get(ctx, name)
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
			if j, err := c.Get(ctx, name); err == nil {
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

// watchJob streams name's events into sink until the terminal event, which
// it returns. The client resumes a stream that breaks after the last event
// seen, so that no event is shown twice or missed; sink notes each loss.
func watchJob(ctx context.Context, c *client.Client, name string, sink eventSink) (*jobforgev1.JobEvent, error) {
	defer sink.close()
	notice := client.OnResume(func(after string, cause error) {
		sink.notice("watch stream lost (%s); resuming after event %s", errText(cause), after)
	})
	var last *jobforgev1.JobEvent
	for ev, err := range c.Watch(ctx, name, notice) {
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w: stopped watching %s; the job goes on (jobctl watch %s)", errInterrupted, name, name)
			}
			return nil, err
		}
		sink.event(ev)
		last = ev
	}
	if last == nil {
		return nil, fmt.Errorf("watch %s: ended without an event", name)
	}
	return last, nil
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
		if p := j.GetProgress(); p != nil && !client.Terminal(j.GetState()) {
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
