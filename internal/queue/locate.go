package queue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobforge/jobforge/internal/store"
)

// A job's keys are in its queue's hash slot (see queue.go), so reading a
// job by id alone means finding its queue. Queues are few and known —
// asynq's set of queues, to which workers add theirs when they start and
// creates add theirs — so a read by id asks every known queue for the job
// in one pipelined round trip; on a Cluster, go-redis sends each node its
// share side by side. A queue's keys for an id it does not hold cost Redis
// a lookup of a missing key.

// knownQueuesFor is how long a Store trusts its copy of asynq's set of
// queues before reading it again; a job not found in any queue known
// that long is looked for again after a fresh read, so a queue another
// process created a moment ago is found too.
const knownQueuesFor = time.Second

// knownQueues is a Store's copy of asynq's set of queues.
type knownQueues struct {
	mu    sync.Mutex
	names []string
	read  time.Time // zero until the set was read
}

// add notes a queue this process writes jobs to.
func (k *knownQueues) add(q string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !slices.Contains(k.names, q) {
		k.names = append(slices.Clone(k.names), q)
		slices.Sort(k.names)
	}
}

// queues returns the queues a job can be in. With fresh it reads asynq's
// set again unless it was read within minAge; changed says whether the
// answer differs from what the caller had before.
func (s *Store) queues(ctx context.Context, fresh bool, minAge time.Duration) (names []string, changed bool, err error) {
	k := &s.known
	k.mu.Lock()
	names, read := k.names, k.read
	k.mu.Unlock()
	now := s.now()
	if !read.IsZero() && (now.Sub(read) < minAge || !fresh && now.Sub(read) < knownQueuesFor) {
		return names, false, nil
	}
	got, err := s.rdb.SMembers(ctx, asynqAllQueues).Result()
	if err != nil {
		return nil, false, fmt.Errorf("read the set of queues: %w", err)
	}
	slices.Sort(got)
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, q := range k.names {
		// Added by this process; asynq's set may not have it yet.
		if !slices.Contains(got, q) {
			got = append(got, q)
		}
	}
	slices.Sort(got)
	changed = !slices.Equal(got, k.names)
	k.names, k.read = got, now
	return got, changed, nil
}

// jobQueues remembers the queue of jobs this process created or read
// (a job never changes queue), so that reading them again asks only that
// queue. Two generations approximate least-recently-used eviction: when
// the current one is full it becomes the previous one, and the previous
// one is dropped.
type jobQueues struct {
	mu        sync.Mutex
	cur, prev map[string]string
}

// jobQueuesSize bounds each generation of jobQueues (~100 bytes an entry: at most 2 MB).
const jobQueuesSize = 10_000

func (c *jobQueues) get(id string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if q, ok := c.cur[id]; ok {
		return q, true
	}
	q, ok := c.prev[id]
	if ok {
		c.putLocked(id, q)
	}
	return q, ok
}

func (c *jobQueues) put(id, q string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(id, q)
}

func (c *jobQueues) putLocked(id, q string) {
	if c.cur == nil || len(c.cur) >= jobQueuesSize {
		c.prev, c.cur = c.cur, make(map[string]string, 1024)
	}
	c.cur[id] = q
}

func (c *jobQueues) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.cur, id)
	delete(c.prev, id)
}

// jobRef names a job: its queue and id.
type jobRef struct{ queue, id string }

// find returns tenant's job id from whichever known queue holds it, or
// store.ErrNotFound.
func (s *Store) find(ctx context.Context, tenant, id string) (*store.Record, error) {
	if q, ok := s.jobQueues.get(id); ok {
		recs, err := s.getMany(ctx, tenant, []jobRef{{q, id}})
		if err != nil {
			return nil, err
		}
		if recs[0] == nil {
			s.jobQueues.forget(id) // expired, or another tenant's
			return nil, store.ErrNotFound
		}
		return recs[0], nil
	}
	qs, _, err := s.queues(ctx, false, 0)
	if err != nil {
		return nil, err
	}
	for try := 0; ; try++ {
		refs := make([]jobRef, len(qs))
		for i, q := range qs {
			refs[i] = jobRef{q, id}
		}
		recs, err := s.getMany(ctx, tenant, refs)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			if r != nil {
				s.jobQueues.put(id, r.Queue)
				return r, nil
			}
		}
		if try > 0 {
			return nil, store.ErrNotFound
		}
		// Perhaps in a queue created since the set was read: read it
		// again, at most every knownQueuesFor, so ids that do not exist
		// (a typo, a probe) do not read the set on every request.
		var changed bool
		if qs, changed, err = s.queues(ctx, true, knownQueuesFor); err != nil || !changed {
			return nil, cmp.Or(err, store.ErrNotFound)
		}
	}
}

// getMany reads records in one pipeline; a missing (expired) record, or
// one of another tenant, is nil.
func (s *Store) getMany(ctx context.Context, tenant string, refs []jobRef) ([]*store.Record, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	hs := make([]*redis.MapStringStringCmd, len(refs))
	es := make([]*redis.StringSliceCmd, len(refs))
	for i, r := range refs {
		hs[i] = pipe.HGetAll(ctx, jobKey(r.queue, r.id))
		es[i] = pipe.LRange(ctx, errorsKey(r.queue, r.id), 0, -1)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read job records: %w", err)
	}
	now := s.now()
	out := make([]*store.Record, len(refs))
	for i, r := range refs {
		h := hs[i].Val()
		if len(h) == 0 || h[fTenant] != tenant {
			continue
		}
		rec, err := decodeRecord(r.id, h, es[i].Val(), now)
		if err != nil {
			return nil, err
		}
		out[i] = rec
	}
	return out, nil
}
