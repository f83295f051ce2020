package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
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
// queues before reading it again: a queue another process created is seen
// within that long.
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

// queues returns the queues a job can be in, reading asynq's set again
// when the copy is older than maxAge.
func (s *Store) queues(ctx context.Context, maxAge time.Duration) ([]string, error) {
	k := &s.known
	k.mu.Lock()
	names, read := k.names, k.read
	k.mu.Unlock()
	now := s.now()
	if !read.IsZero() && now.Sub(read) < maxAge {
		return names, nil
	}
	got, err := s.rdb.SMembers(ctx, asynqAllQueues).Result()
	if err != nil {
		return nil, fmt.Errorf("read the set of queues: %w", err)
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
	k.names, k.read = got, now
	return got, nil
}

// jobQueues remembers the queue of jobs this process created or read
// (a job never changes queue), so that reading them again asks only that
// queue. Two generations approximate least-recently-used eviction: when
// the current one is full it becomes the previous one, and the previous
// one is dropped.
//
// An entry is a job id's 16 bytes and the number of its queue's name, so
// that the maps hold no pointer and the garbage collector never scans
// them: with the id and queue strings, the cache was a fifth of the API's
// live heap under create load, marked again by every GC cycle. Only ids
// in the canonical form the store writes (lower-case UUIDs) are
// remembered; another id is looked for everywhere, as a job not seen.
type jobQueues struct {
	mu        sync.Mutex
	cur, prev map[uuid.UUID]uint32
	names     []string          // queue names, by number
	numbers   map[string]uint32 // queue name → number
}

const (
	// jobQueuesSize bounds each generation of jobQueues (~20 bytes an
	// entry: at most 0.4 MB for both).
	jobQueuesSize = 10_000
	// maxQueueNames bounds the queue names jobQueues numbers; past it the
	// cache starts again empty.
	maxQueueNames = 4096
)

// canonicalID parses id if it is a UUID as the store writes it.
func canonicalID(id string) (uuid.UUID, bool) {
	if len(id) != 36 {
		return uuid.UUID{}, false
	}
	for i := range len(id) {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') && c != '-' {
			return uuid.UUID{}, false
		}
	}
	u, err := uuid.Parse(id)
	return u, err == nil
}

func (c *jobQueues) get(id string) (string, bool) {
	u, ok := canonicalID(id)
	if !ok {
		return "", false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.cur[u]; ok {
		return c.names[n], true
	}
	n, ok := c.prev[u]
	if !ok {
		return "", false
	}
	c.putLocked(u, n)
	return c.names[n], true
}

func (c *jobQueues) put(id, q string) {
	u, ok := canonicalID(id)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.numbers[q]
	if !ok {
		if len(c.names) >= maxQueueNames || c.numbers == nil {
			c.cur, c.prev, c.names, c.numbers = nil, nil, nil, map[string]uint32{}
		}
		n = uint32(len(c.names))
		c.names, c.numbers[q] = append(c.names, q), n
	}
	c.putLocked(u, n)
}

func (c *jobQueues) putLocked(u uuid.UUID, n uint32) {
	if c.cur == nil || len(c.cur) >= jobQueuesSize {
		c.prev, c.cur = c.cur, make(map[uuid.UUID]uint32, jobQueuesSize) // sized once: growing it step by step cost a create ~90 bytes of copies
	}
	c.cur[u] = n
}

func (c *jobQueues) forget(id string) {
	u, ok := canonicalID(id)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.cur, u)
	delete(c.prev, u)
}

// jobRef names a job: its queue and id.
type jobRef struct{ queue, id string }

// find returns tenant's job id from whichever known queue holds it, or
// store.ErrNotFound. A job the store met lately is looked for in its queue
// only.
func (s *Store) find(ctx context.Context, tenant, id string) (*store.Record, error) {
	q, remembered := s.jobQueues.get(id)
	qs := []string{q}
	if !remembered {
		var err error
		if qs, err = s.queues(ctx, knownQueuesFor); err != nil {
			return nil, err
		}
	}
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
			if !remembered {
				s.jobQueues.put(id, r.Queue)
			}
			return r, nil
		}
	}
	if remembered {
		s.jobQueues.forget(id) // expired, or another tenant's
	}
	return nil, store.ErrNotFound
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
