package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"regexp"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/client"
	"github.com/jobforge/jobforge/internal/proctest"
)

// link is a TCP connection between the client and the server that the
// test can break, as a lost network or a restarted load balancer does:
// cut closes the connections open through it; the next ones are
// forwarded again.
type link struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns []net.Conn
	cuts  int
	wg    sync.WaitGroup
}

func newLink(t *testing.T, target string) *link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l := &link{ln: ln, target: target}
	l.wg.Add(1)
	go l.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		l.cut()
		l.wg.Wait()
	})
	return l
}

func (l *link) addr() string { return l.ln.Addr().String() }

func (l *link) accept() {
	defer l.wg.Done()
	for {
		in, err := l.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", l.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		l.mu.Lock()
		l.conns = append(l.conns, in, out)
		l.mu.Unlock()
		l.wg.Add(2)
		go l.pipe(in, out)
		go l.pipe(out, in)
	}
}

func (l *link) pipe(dst, src net.Conn) {
	defer l.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}

// cut closes every connection open through the link.
func (l *link) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		_ = c.Close()
	}
	l.conns = nil
	l.cuts++
}

// watchReport submits a report of pages pages and returns its name.
func watchReport(ctx context.Context, t *testing.T, c *client.Client, pages int) string {
	t.Helper()
	j, err := client.Submit(ctx, c, "report", map[string]int{"pages": pages, "page_millis": 20})
	require.NoError(t, err)
	return j.GetName()
}

var pageRE = regexp.MustCompile(`^page (\d+) of \d+$`)

// pagesOf returns the page numbers of the progress events, in order.
func pagesOf(t *testing.T, events []*jobforgev1.JobEvent) []int {
	t.Helper()
	var pages []int
	for _, ev := range events {
		if ev.GetKind() != jobforgev1.JobEvent_PROGRESS {
			continue
		}
		m := pageRE.FindStringSubmatch(ev.GetProgress().GetMessage())
		require.NotNil(t, m, ev.GetProgress().GetMessage())
		p, _ := strconv.Atoi(m[1])
		pages = append(pages, p)
	}
	return pages
}

// requireWholeWatch checks that events are a watch's from some page to
// the end: every later page once, in order, then SUCCEEDED.
func requireWholeWatch(t *testing.T, events []*jobforgev1.JobEvent, pages int) {
	t.Helper()
	got := pagesOf(t, events)
	require.NotEmpty(t, got)
	for i := range got {
		require.Equal(t, got[0]+i, got[i], "no page missed or repeated: %v", got)
	}
	require.Equal(t, pages, got[len(got)-1])
	last := events[len(events)-1]
	require.Equal(t, jobforgev1.JobEvent_STATE_CHANGED, last.GetKind())
	require.Equal(t, jobforgev1.Job_SUCCEEDED, last.GetState())
	seen := map[string]bool{}
	for _, ev := range events {
		require.False(t, seen[ev.GetId()], "event %s twice", ev.GetId())
		seen[ev.GetId()] = true
	}
}

// TestWatch checks a whole watch, and one that starts after an event.
func TestWatch(t *testing.T) {
	t.Parallel()
	c := dial(t)
	ctx := testContext(t)
	const pages = 8
	name := watchReport(ctx, t, c, pages)
	var events []*jobforgev1.JobEvent
	var progress []int32
	for ev, err := range c.Watch(ctx, name, client.OnProgress(func(p *jobforgev1.Progress) { progress = append(progress, p.GetPercent()) })) {
		require.NoError(t, err)
		events = append(events, ev)
	}
	require.Equal(t, jobforgev1.JobEvent_SNAPSHOT, events[0].GetKind())
	require.Equal(t, name, events[0].GetJob().GetName())
	requireWholeWatch(t, events[1:], pages)
	require.IsIncreasing(t, progress)
	require.Equal(t, int32(100), progress[len(progress)-1])

	// Starting after an event of the first watch delivers the same events
	// that followed it, without a snapshot.
	from := len(events) / 2
	var again []*jobforgev1.JobEvent
	for ev, err := range c.Watch(ctx, name, client.AfterEvent(events[from].GetId())) {
		require.NoError(t, err)
		again = append(again, ev)
	}
	require.Equal(t, len(events)-from-1, len(again))
	for i, ev := range again {
		require.Equal(t, events[from+1+i].GetId(), ev.GetId())
	}
}

// TestWatchResumes checks that a watch whose connection breaks goes on
// after the last event it delivered, on a new connection. The job runs
// far longer than the test: each cut breaks a live stream, and the test
// cancels the job at the end.
func TestWatchResumes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		cutAt []int // cut the link when these pages have been seen
	}{
		{name: "once", cutAt: []int{2}},
		{name: "again after a resumed stream worked", cutAt: []int{2, 6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			needServer(t)
			l := newLink(t, server.addr)
			c := dialAt(t, l.addr(), client.WithToken(server.token))
			ctx := testContext(t)
			name := watchReport(ctx, t, c, 1000)
			const cancelAt = 10
			var (
				events  []*jobforgev1.JobEvent
				resumed []string // "after id: code"
			)
			cuts := tc.cutAt
			for ev, err := range c.Watch(ctx, name, client.OnResume(func(after string, cause error) {
				resumed = append(resumed, fmt.Sprintf("%s: %s", after, statusCode(cause)))
			})) {
				require.NoError(t, err)
				events = append(events, ev)
				p := pagesOf(t, []*jobforgev1.JobEvent{ev})
				switch {
				case len(p) == 0:
				case len(cuts) > 0 && p[0] >= cuts[0]:
					cuts = cuts[1:]
					l.cut()
				case len(cuts) == 0 && p[0] == cancelAt:
					_, err := c.Cancel(ctx, name, "test over")
					require.NoError(t, err)
				}
			}
			require.Empty(t, cuts, "every cut made")
			require.Len(t, resumed, len(tc.cutAt), "%v", resumed)
			for _, r := range resumed {
				require.Regexp(t, `^\d+-\d+: Unavailable$`, r)
			}
			got := pagesOf(t, events)
			for i := range got {
				require.Equal(t, got[0]+i, got[i], "no page missed or repeated: %v", got)
			}
			require.GreaterOrEqual(t, got[len(got)-1], cancelAt)
			require.Equal(t, jobforgev1.Job_CANCELLED, events[len(events)-1].GetState())
		})
	}
}

func statusCode(err error) string {
	var e *client.Error
	if errors.As(err, &e) {
		return e.Code.String()
	}
	return err.Error()
}

// TestWatchEnds checks the ways a watch ends other than with its job.
func TestWatchEnds(t *testing.T) {
	t.Parallel()
	c := dial(t)
	ctx := testContext(t)
	for _, tc := range []struct {
		name     string
		watch    func(t *testing.T) iter.Seq2[*jobforgev1.JobEvent, error]
		events   int // delivered before the error
		sentinel error
		code     codes.Code
	}{
		{
			name: "unknown job",
			watch: func(*testing.T) iter.Seq2[*jobforgev1.JobEvent, error] {
				return c.Watch(ctx, "0193e0c4-5b1e-7c2a-9f4e-2d6b8a1c3e5f")
			},
			sentinel: client.ErrNotFound, code: codes.NotFound,
		},
		{
			name: "a server that was never reached is not retried",
			watch: func(t *testing.T) iter.Seq2[*jobforgev1.JobEvent, error] {
				return dialAt(t, fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(t))).Watch(ctx, "jobs/x")
			},
			sentinel: client.ErrUnavailable, code: codes.Unavailable,
		},
		{
			name: "the context",
			watch: func(t *testing.T) iter.Seq2[*jobforgev1.JobEvent, error] {
				wctx, cancel := context.WithCancel(ctx)
				name := watchReport(ctx, t, c, 1000)
				t.Cleanup(func() { _, _ = c.Cancel(context.Background(), name, "test over") })
				return func(yield func(*jobforgev1.JobEvent, error) bool) {
					for ev, err := range c.Watch(wctx, name) {
						if !yield(ev, err) {
							return
						}
						cancel() // after the snapshot
					}
				}
			},
			events: 1, sentinel: context.Canceled,
		},
		{
			name: "closing the client",
			watch: func(t *testing.T) iter.Seq2[*jobforgev1.JobEvent, error] {
				own := dial(t)
				name := watchReport(ctx, t, own, 1000)
				t.Cleanup(func() { _, _ = c.Cancel(context.Background(), name, "test over") })
				return func(yield func(*jobforgev1.JobEvent, error) bool) {
					for ev, err := range own.Watch(ctx, name, client.OnResume(func(string, error) { t.Error("resumed a closed client") })) {
						if !yield(ev, err) {
							return
						}
						_ = own.Close()
					}
				}
			},
			events: 1, sentinel: context.Canceled,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var events int
			var errs []error
			for ev, err := range tc.watch(t) {
				if err != nil {
					errs = append(errs, err)
					continue
				}
				require.Empty(t, errs, "no event after an error")
				require.NotNil(t, ev)
				events++
			}
			require.Equal(t, tc.events, events)
			require.Len(t, errs, 1)
			require.ErrorIs(t, errs[0], tc.sentinel)
			if tc.code != codes.OK {
				var e *client.Error
				require.ErrorAs(t, errs[0], &e)
				require.Equal(t, tc.code, e.Code)
			}
		})
	}

	t.Run("breaking out of the loop", func(t *testing.T) {
		t.Parallel()
		name := watchReport(ctx, t, c, 1000)
		t.Cleanup(func() { _, _ = c.Cancel(context.Background(), name, "test over") })
		n := 0
		for _, err := range c.Watch(ctx, name) {
			require.NoError(t, err)
			n++
			break
		}
		require.Equal(t, 1, n)
	})
}
