package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/jobforge/jobforge/internal/store"
)

// listScanBudget bounds how many index entries one List call examines, so
// a selective filter over a large index returns a short page with a cursor
// rather than scanning everything.
const listScanBudget = 5000

// List returns up to q.Limit matching jobs and a cursor for the next page,
// or nil at the end. Entries of jobs whose retention has passed are removed
// from the index as they are met.
func (s *Store) List(ctx context.Context, q store.ListQuery) (_ []*store.Record, _ *store.Cursor, err error) {
	defer markUnavailable(&err)
	key := indexKey(q.Tenant)
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
	var out []*store.Record
	scanned := 0
	const chunk = 200
	offset := int64(0)
	for scanned < listScanBudget {
		entries, err := s.rdb.ZRevRangeByScoreWithScores(ctx, key, &redis.ZRangeBy{
			Max: maxScore, Min: minScore, Offset: offset, Count: chunk,
		}).Result()
		if err != nil {
			return nil, nil, fmt.Errorf("read job index: %w", err)
		}
		if len(entries) == 0 {
			return out, nil, nil
		}
		offset += int64(len(entries))
		ids := make([]string, 0, len(entries))
		scores := make([]int64, 0, len(entries))
		for _, e := range entries {
			id, _ := e.Member.(string)
			score := int64(e.Score)
			if cursor != nil && score == cursor.Score && id >= cursor.ID {
				continue // returned on an earlier page
			}
			ids = append(ids, id)
			scores = append(scores, score)
		}
		recs, err := s.getMany(ctx, q.Tenant, ids)
		if err != nil {
			return nil, nil, err
		}
		var gone []any
		for i, rec := range recs {
			scanned++
			if rec == nil {
				gone = append(gone, ids[i])
				continue
			}
			if q.Match == nil || q.Match(rec) {
				out = append(out, rec)
				if len(out) == q.Limit {
					return out, &store.Cursor{Score: scores[i], ID: ids[i]}, nil
				}
			}
			if scanned >= listScanBudget {
				return out, &store.Cursor{Score: scores[i], ID: ids[i]}, nil
			}
		}
		if len(gone) > 0 {
			if err := s.rdb.ZRem(ctx, key, gone...).Err(); err != nil {
				s.log.WarnContext(ctx, "remove expired jobs from index", "error", err)
			}
			offset -= int64(len(gone))
		}
		if len(entries) < chunk {
			return out, nil, nil
		}
	}
	return out, nil, nil
}

// getMany reads records in one pipeline; a missing (expired) record is nil.
func (s *Store) getMany(ctx context.Context, tenant string, ids []string) ([]*store.Record, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	hs := make([]*redis.MapStringStringCmd, len(ids))
	es := make([]*redis.StringSliceCmd, len(ids))
	for i, id := range ids {
		hs[i] = pipe.HGetAll(ctx, jobKey(id))
		es[i] = pipe.LRange(ctx, errorsKey(id), 0, -1)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read job records: %w", err)
	}
	now := s.now()
	out := make([]*store.Record, len(ids))
	for i, id := range ids {
		h := hs[i].Val()
		if len(h) == 0 || h[fTenant] != tenant {
			continue
		}
		rec, err := decodeRecord(id, h, es[i].Val(), now)
		if err != nil {
			return nil, err
		}
		out[i] = rec
	}
	return out, nil
}
