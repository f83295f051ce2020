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
//
// The create that finds a pipeline free sends it itself, with the creates
// queued by then, so that a create alone hands nothing to another goroutine
// (a goroutine's start and two wake-ups cost more than the rest of the
// hand-off); the creates queued meanwhile go in the next pipeline, sent by a
// goroutine of their own.
func (s *Store) create(ctx context.Context, w *jobWrite) store.CreateResult {
	q := &queuedCreate{w: w, at: time.Now(), done: make(chan struct{})}
	c := &s.creates
	c.mu.Lock()
	c.waiting = append(c.waiting, q)
	lead := c.inflight < maxCreatePipelines
	if lead {
		c.inflight++
	}
	c.mu.Unlock()
	if lead {
		ctx := context.WithoutCancel(ctx) // the pipeline carries other creates
		batch := s.nextCreates()
		for batch != nil && !isClosed(q.done) {
			s.sendCreates(ctx, batch)
			batch = s.nextCreates()
		}
		if batch != nil {
			go s.sendAllCreates(ctx, batch)
		}
		<-q.done // sent by this call, or by another pipeline already under way
		return q.res
	}
	select {
	case <-q.done:
		return q.res
	case <-ctx.Done():
		return store.CreateResult{Err: ctx.Err()}
	}
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

var errCreateQueueWait = &unavailableError{errors.New("write job: Redis is slow to answer; not sent")}

// nextCreates takes the next creates to send; when none is queued, it
// returns nil and gives the pipeline up.
func (s *Store) nextCreates() []*queuedCreate {
	c := &s.creates
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(len(c.waiting), maxCreateBatch)
	if n == 0 {
		c.inflight--
		return nil
	}
	batch := c.waiting[:n:n]
	c.waiting = c.waiting[n:]
	return batch
}

// sendAllCreates sends batch, then the creates queued meanwhile, a
// pipeline at a time, until none is left.
func (s *Store) sendAllCreates(ctx context.Context, batch []*queuedCreate) {
	for ; batch != nil; batch = s.nextCreates() {
		s.sendCreates(ctx, batch)
	}
}

// sendCreates writes batch in one pipeline and answers its creates.
func (s *Store) sendCreates(ctx context.Context, batch []*queuedCreate) {
	writes := make([]*jobWrite, len(batch))
	results := make([]store.CreateResult, len(batch))
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
