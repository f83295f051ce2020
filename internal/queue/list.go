package queue

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/jobforge/jobforge/internal/store"
)

// listScanBudget bounds how many index entries one List call examines, so
// a selective filter over a large index returns a short page with a cursor
// rather than scanning everything.
const listScanBudget = 5000

// listChunk is how many index entries of each queue List reads at a time.
const listChunk = 200

// indexEntry is one entry of a tenant's index in a queue.
type indexEntry struct {
	ref   jobRef
	score int64
}

// before reports whether e comes before o in a list: newest first, and
// among jobs created in the same microsecond, greater ids first (the order
// of ZREVRANGEBYSCORE within one index).
func (e indexEntry) before(o indexEntry) bool {
	if e.score != o.score {
		return e.score > o.score
	}
	return e.ref.id > o.ref.id
}

// indexReader walks a tenant's index in one queue, newest first.
type indexReader struct {
	queue  string
	offset int64        // entries read so far (less the ones removed)
	buf    []indexEntry // read, not yet taken
	done   bool         // the index has no entries beyond buf
}

// List returns up to q.Limit matching jobs and a cursor for the next page,
// or nil at the end. A tenant has an index per queue (the queue's slot);
// List merges them newest first. Entries of jobs whose retention has passed
// are removed from the index as they are met.
func (s *Store) List(ctx context.Context, q store.ListQuery) (_ []*store.Record, _ *store.Cursor, err error) {
	defer markUnavailable(&err)
	maxScore := "+inf"
	if !q.CreatedBefore.IsZero() {
		maxScore = "(" + strconv.FormatInt(q.CreatedBefore.UnixMicro(), 10)
	}
	minScore := "-inf"
	if !q.CreatedAfter.IsZero() {
		minScore = "(" + strconv.FormatInt(q.CreatedAfter.UnixMicro(), 10)
	}
	cursor := q.After
	if cursor != nil {
		// Inclusive: entries with the cursor's score but a smaller id follow.
		maxScore = strconv.FormatInt(cursor.Score, 10)
		if !q.CreatedBefore.IsZero() && q.CreatedBefore.UnixMicro() <= cursor.Score {
			maxScore = "(" + strconv.FormatInt(q.CreatedBefore.UnixMicro(), 10)
		}
	}
	queues, err := s.queues(ctx, knownQueuesFor)
	if err != nil {
		return nil, nil, err
	}
	readers := make([]*indexReader, len(queues))
	for i, name := range queues {
		readers[i] = &indexReader{queue: name}
	}
	var out []*store.Record
	scanned := 0
	for scanned < listScanBudget {
		if err := s.fillIndexReaders(ctx, q.Tenant, readers, minScore, maxScore, cursor); err != nil {
			return nil, nil, err
		}
		batch := takeMerged(readers, listChunk)
		if len(batch) == 0 {
			return out, nil, nil
		}
		refs := make([]jobRef, len(batch))
		for i, e := range batch {
			refs[i] = e.ref
		}
		recs, err := s.getMany(ctx, q.Tenant, refs)
		if err != nil {
			return nil, nil, err
		}
		gone := map[string][]any{}
		for i, rec := range recs {
			scanned++
			e := batch[i]
			if rec == nil {
				gone[e.ref.queue] = append(gone[e.ref.queue], e.ref.id)
				continue
			}
			if q.Match == nil || q.Match(rec) {
				out = append(out, rec)
				if len(out) == q.Limit {
					return out, &store.Cursor{Score: e.score, ID: e.ref.id}, nil
				}
			}
			if scanned >= listScanBudget {
				return out, &store.Cursor{Score: e.score, ID: e.ref.id}, nil
			}
		}
		s.dropFromIndexes(ctx, q.Tenant, readers, gone)
	}
	return out, nil, nil
}

// takeMerged takes up to n entries from the readers in list order, and
// stops early when a reader that may hold more has none read: its next
// entry could come first.
func takeMerged(readers []*indexReader, n int) []indexEntry {
	var batch []indexEntry
	for len(batch) < n {
		var next *indexReader
		for _, r := range readers {
			if len(r.buf) == 0 {
				if !r.done {
					return batch
				}
				continue
			}
			if next == nil || r.buf[0].before(next.buf[0]) {
				next = r
			}
		}
		if next == nil {
			return batch
		}
		batch = append(batch, next.buf[0])
		next.buf = next.buf[1:]
	}
	return batch
}

// fillIndexReaders reads the next chunk of every index whose reader has
// nothing left to give and may hold more, pipelined, until each has
// entries or is done.
func (s *Store) fillIndexReaders(ctx context.Context, tenant string, readers []*indexReader, minScore, maxScore string, cursor *store.Cursor) error {
	for {
		more, err := s.readIndexChunks(ctx, tenant, readers, minScore, maxScore, cursor)
		if err != nil || !more {
			return err
		}
	}
}

// readIndexChunks is one round of fillIndexReaders; false when no reader
// needed reading.
func (s *Store) readIndexChunks(ctx context.Context, tenant string, readers []*indexReader, minScore, maxScore string, cursor *store.Cursor) (bool, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.ZSliceCmd, len(readers))
	n := 0
	for i, r := range readers {
		if len(r.buf) == 0 && !r.done {
			cmds[i] = pipe.ZRevRangeByScoreWithScores(ctx, indexKey(r.queue, tenant), &redis.ZRangeBy{
				Max: maxScore, Min: minScore, Offset: r.offset, Count: listChunk,
			})
			n++
		}
	}
	if n == 0 {
		return false, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return false, fmt.Errorf("read job index: %w", err)
	}
	for i, r := range readers {
		if cmds[i] == nil {
			continue
		}
		entries := cmds[i].Val()
		r.offset += int64(len(entries))
		r.done = len(entries) < listChunk
		for _, e := range entries {
			id, _ := e.Member.(string)
			score := int64(e.Score)
			if cursor != nil && score == cursor.Score && id >= cursor.ID {
				continue // returned on an earlier page
			}
			r.buf = append(r.buf, indexEntry{jobRef{r.queue, id}, score})
		}
	}
	return true, nil
}

// dropFromIndexes removes the entries of expired jobs from their indexes
// (gone: queue → ids) and moves each reader's offset back by as many.
func (s *Store) dropFromIndexes(ctx context.Context, tenant string, readers []*indexReader, gone map[string][]any) {
	if len(gone) == 0 {
		return
	}
	pipe := s.rdb.Pipeline()
	for q, ids := range gone {
		pipe.ZRem(ctx, indexKey(q, tenant), ids...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		s.log.WarnContext(ctx, "remove expired jobs from index", "error", err)
		return
	}
	for _, r := range readers {
		r.offset -= int64(len(gone[r.queue]))
	}
}
