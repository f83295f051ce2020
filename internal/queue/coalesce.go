package queue

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jobforge/jobforge/internal/store"
)

// Concurrent creates share round trips (group commit): a create queues its
// job, and one pipeline at a time sends whatever is queued (writeAll: one
// createScript call per queue and up to maxJobsPerCreateCall jobs, each job
// still checked and written whole or not at all and answered on its own).
// Alone, a create is sent at once; under load, the creates that arrive while
// a pipeline is in flight go together in the next one — fewer system calls,
// pool checkouts and script calls per job. A script call costs Redis about
// 30 µs whatever it writes and each job about 20 µs more, so the size of
// the groups is what matters: with four pipelines in flight a create load of
// 64 concurrent clients made groups of ~5 jobs, with one ~11, which cut
// Redis's CPU per create by an eighth and the API's by a twentieth
// (docs/benchmarks.md). One pipeline adds at most one round trip of waiting
// to a create that arrives while another is in flight.
const (
	maxCreatePipelines = 1
	maxCreateBatch     = 128
	// maxCreateQueueWait bounds how long a create waits for a pipeline:
	// one that waited longer (Redis hangs, the pipelines before it are
	// timing out) is answered "unavailable" unsent, so a request still
	// answers within about a second while Redis does not.
	maxCreateQueueWait = 250 * time.Millisecond
)

// createQueue gathers the creates waiting for a pipeline.
type createQueue struct {
	mu       sync.Mutex
	waiting  []*queuedCreate
	inflight int // pipelines sending
}

type queuedCreate struct {
	w    *jobWrite
	at   time.Time // queued
	res  store.CreateResult
	done chan struct{}
}

// create writes w together with the creates queued at the same moment and
// returns its result. A caller whose context ends stops waiting; its write
// may still happen, as a request that timed out after reaching Redis.
func (s *Store) create(ctx context.Context, w *jobWrite) store.CreateResult {
	q := &queuedCreate{w: w, at: time.Now(), done: make(chan struct{})}
	c := &s.creates
	c.mu.Lock()
	c.waiting = append(c.waiting, q)
	start := c.inflight < maxCreatePipelines
	if start {
		c.inflight++
	}
	c.mu.Unlock()
	if start {
		go s.sendCreates(context.WithoutCancel(ctx))
	}
	select {
	case <-q.done:
		return q.res
	case <-ctx.Done():
		return store.CreateResult{Err: ctx.Err()}
	}
}

var errCreateQueueWait = &unavailableError{errors.New("write job: Redis is slow to answer; not sent")}

// sendCreates sends the queued creates, a pipeline at a time, until none
// is left.
func (s *Store) sendCreates(ctx context.Context) {
	c := &s.creates
	for {
		c.mu.Lock()
		n := min(len(c.waiting), maxCreateBatch)
		if n == 0 {
			c.inflight--
			c.mu.Unlock()
			return
		}
		batch := c.waiting[:n:n]
		c.waiting = c.waiting[n:]
		c.mu.Unlock()

		writes := make([]*jobWrite, n)
		results := make([]store.CreateResult, n)
		now := time.Now()
		for i, q := range batch {
			if now.Sub(q.at) > maxCreateQueueWait {
				results[i].Err = errCreateQueueWait
				continue
			}
			writes[i] = q.w
		}
		s.writeAll(ctx, writes, results)
		for i, q := range batch {
			q.res = results[i]
			close(q.done)
		}
	}
}
