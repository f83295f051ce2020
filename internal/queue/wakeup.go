package queue

import (
	"cmp"
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Wake-up: asynq's processor checks its queues one dequeue script at a time
// and, when all are empty, sleeps TaskCheckInterval before checking again.
// Polling often makes idle pickup fast but costs Redis work all the time;
// polling rarely is cheap but slow. The waker turns this into long polling:
// a go-redis hook on the client of the worker's asynq servers sees the
// dequeue calls, and when every queue of a pool has just come back empty it
// holds the last call until a job arrives in one of them or maxIdle passes.
// The store's create and retry scripts announce the jobs they enqueue on
// wakeChannel (once per call, in the write's own round trip); jobs that
// arrive another way (scheduled and retried tasks moved by asynq's
// forwarder, producers other than the store) are picked up within the
// pool's poll interval; the forwarder's moves are seen by the hook too and
// wake the pool at once.

// wakeChannel carries the queue names of newly enqueued jobs.
const wakeChannel = keyPrefix + "wake"

// waker holds the idle dequeue calls of a worker's pools.
type waker struct {
	pools   map[string]*wakePool // by queue name
	stopped chan struct{}
	once    sync.Once
}

type wakePool struct {
	queues  []string
	maxIdle time.Duration // the pool's poll interval
	wake    chan struct{} // buffered 1: a wake-up is never lost

	mu    sync.Mutex
	empty map[string]bool // queues found empty since the last task
}

func newWaker(pools []Pool, poll time.Duration) *waker {
	w := &waker{pools: map[string]*wakePool{}, stopped: make(chan struct{})}
	for _, p := range pools {
		maxIdle := cmp.Or(p.PollInterval, poll, time.Second)
		wp := &wakePool{maxIdle: maxIdle, wake: make(chan struct{}, 1), empty: map[string]bool{}}
		for q := range p.Queues {
			wp.queues = append(wp.queues, q)
			w.pools[q] = wp
		}
	}
	return w
}

// notify wakes the pool that serves queue q, if any.
func (w *waker) notify(q string) {
	if p := w.pools[q]; p != nil {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// stop releases every held call and holds no more: asynq's Stop waits for
// the processor's current dequeue to return.
func (w *waker) stop() { w.once.Do(func() { close(w.stopped) }) }

// dequeueQueue returns the queue of an asynq dequeue script call, or "".
// asynq v0.26's rdb.Dequeue runs a script on exactly the keys
// asynq:{q}:pending, asynq:{q}:paused, asynq:{q}:active, asynq:{q}:lease.
func dequeueQueue(args []any) string {
	if len(args) < 7 {
		return ""
	}
	name, _ := args[0].(string)
	if name != "evalsha" && name != "eval" {
		return ""
	}
	pending, _ := args[3].(string)
	lease, _ := args[6].(string)
	q, ok := strings.CutPrefix(pending, "asynq:{")
	if !ok {
		return ""
	}
	q, ok = strings.CutSuffix(q, "}:pending")
	if !ok || lease != "asynq:{"+q+"}:lease" {
		return ""
	}
	return q
}

// forwardQueue returns the queue of an asynq forward script call (due
// scheduled or retry tasks moved to pending), or "". Its keys are the
// source set and asynq:{q}:pending.
func forwardQueue(args []any) string {
	if len(args) < 5 {
		return ""
	}
	name, _ := args[0].(string)
	if name != "evalsha" && name != "eval" {
		return ""
	}
	if n, ok := args[2].(int); !ok || n != 2 {
		return ""
	}
	src, _ := args[3].(string)
	pending, _ := args[4].(string)
	q, ok := strings.CutPrefix(pending, "asynq:{")
	if !ok {
		return ""
	}
	q, ok = strings.CutSuffix(q, "}:pending")
	if !ok || (src != "asynq:{"+q+"}:scheduled" && src != "asynq:{"+q+"}:retry") {
		return ""
	}
	return q
}

// hook is the go-redis hook that holds idle dequeue calls.
func (w *waker) hook() redis.Hook { return wakeHook{w} }

type wakeHook struct{ w *waker }

func (wakeHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (wakeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h wakeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		args := cmd.Args()
		if q := forwardQueue(args); q != "" {
			if c, ok := cmd.(*redis.Cmd); ok {
				if n, _ := c.Int(); n > 0 {
					h.w.notify(q) // scheduled or retrying jobs became due
				}
			}
			return err
		}
		q := dequeueQueue(args)
		if q == "" {
			return err
		}
		p := h.w.pools[q]
		if p == nil {
			return err
		}
		if !errors.Is(err, redis.Nil) {
			p.reset() // a task (or an error): the pool is busy
			return err
		}
		if p.allEmpty(q) {
			h.w.hold(ctx, p)
		}
		return err
	}
}

// allEmpty marks q empty and reports whether every queue of the pool is.
func (p *wakePool) allEmpty(q string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.empty[q] = true
	if len(p.empty) < len(p.queues) {
		return false
	}
	clear(p.empty)
	return true
}

func (p *wakePool) reset() {
	p.mu.Lock()
	clear(p.empty)
	p.mu.Unlock()
}

// hold waits for a wake-up of p, its maxIdle, or stop.
func (w *waker) hold(ctx context.Context, p *wakePool) {
	select {
	case <-w.stopped:
		return
	default:
	}
	t := time.NewTimer(p.maxIdle)
	defer t.Stop()
	select {
	case <-p.wake:
	case <-t.C:
	case <-w.stopped:
	case <-ctx.Done():
	}
}

// wakeClient returns a client for the worker's asynq servers with the
// waker's hook, so that only their calls can be held; ok is false when rdb
// is of a kind that cannot be copied (the worker then polls).
func wakeClient(rdb redis.UniversalClient, w *waker) (redis.UniversalClient, bool) {
	dup, ok := newClientLike(rdb, func(*redis.Options) {})
	if !ok {
		return nil, false
	}
	dup.AddHook(w.hook())
	return dup, true
}
