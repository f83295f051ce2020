package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobforge/jobforge/internal/catalog"
)

// The job-type catalogue in Redis.
//
//   - catalogDefinitionsKey: hash, definition digest → the entry as JSON.
//     Written with HSETNX, so an entry keeps the time it was first
//     published, which orders the definitions of one type.
//   - catalogWorkersKey: hash, worker id → {type name: digest} as JSON, the
//     types each worker serves. A worker is live while its heartbeat (see
//     recovery.go) is; the fields of workers gone for good are pruned by
//     the recovery loop.
//
// Definitions are kept after their workers are gone, so a type whose
// workers all stopped still validates (its jobs wait for a worker).
const (
	catalogDefinitionsKey = keyPrefix + "catalog:definitions"
	catalogWorkersKey     = keyPrefix + "catalog:workers"
)

// catalogPublication is what a worker writes about the types it serves.
type catalogPublication struct {
	entries []catalog.Entry
	digests []string
	served  string // JSON {name: digest}
}

func newCatalogPublication(entries []catalog.Entry) (catalogPublication, error) {
	p := catalogPublication{entries: entries, digests: make([]string, len(entries))}
	byName := make(map[string]string, len(entries))
	for i, e := range entries {
		p.digests[i] = e.Digest()
		byName[e.Name] = p.digests[i]
	}
	b, err := json.Marshal(byName)
	if err != nil {
		return p, err
	}
	p.served = string(b)
	return p, nil
}

// write adds the publication to pipe: the definitions (unless only the
// worker's liveness entry is refreshed) and the types this worker serves.
func (p catalogPublication) write(ctx context.Context, pipe redis.Pipeliner, workerID string, now time.Time, definitions bool) error {
	if definitions {
		for i, e := range p.entries {
			e.FirstPublished = now.UnixMilli()
			b, err := json.Marshal(e)
			if err != nil {
				return fmt.Errorf("encode catalogue entry %s: %w", e.Name, err)
			}
			pipe.HSetNX(ctx, catalogDefinitionsKey, p.digests[i], b)
		}
	}
	pipe.HSet(ctx, catalogWorkersKey, workerID, p.served)
	return nil
}

// CatalogSource reads the published catalogue: every definition, and the
// types each live worker serves.
func CatalogSource(rdb Client) catalog.Source {
	return func(ctx context.Context) (catalog.Published, error) {
		pipe := rdb.Pipeline()
		defs := pipe.HGetAll(ctx, catalogDefinitionsKey)
		workers := pipe.HGetAll(ctx, catalogWorkersKey)
		live := pipe.ZRangeByScore(ctx, heartbeatsKey, &redis.ZRangeBy{
			Min: "(" + strconv.FormatInt(time.Now().UnixMilli(), 10), Max: "+inf",
		})
		if _, err := pipe.Exec(ctx); err != nil {
			err = fmt.Errorf("read job type catalogue: %w", err)
			markUnavailable(&err) // the API answers 503 to this, as to the store's own errors
			return catalog.Published{}, err
		}
		p := catalog.Published{Definitions: make(map[string]catalog.Entry, len(defs.Val())), Workers: map[string]map[string]string{}}
		for digest, raw := range defs.Val() {
			var e catalog.Entry
			if err := json.Unmarshal([]byte(raw), &e); err != nil {
				continue // written by an incompatible version; its worker republishes
			}
			p.Definitions[digest] = e
		}
		for _, id := range live.Val() {
			var served map[string]string
			if json.Unmarshal([]byte(workers.Val()[id]), &served) != nil {
				continue
			}
			for name, digest := range served {
				if _, ok := p.Definitions[digest]; !ok {
					delete(served, name) // definition not written yet
				}
			}
			p.Workers[id] = served
		}
		return p, nil
	}
}

// PublishCatalog writes catalogue entries without running a worker (`worker
// publish`, tests): the types are known, with no live worker serving them,
// until a worker that runs them starts.
func PublishCatalog(ctx context.Context, rdb Client, entries []catalog.Entry) error {
	pipe := rdb.Pipeline()
	now := time.Now().UnixMilli()
	for _, e := range entries {
		digest := e.Digest()
		e.FirstPublished = now
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode catalogue entry %s: %w", e.Name, err)
		}
		pipe.HSetNX(ctx, catalogDefinitionsKey, digest, b)
	}
	_, err := pipe.Exec(ctx)
	return err
}

// pruneCatalogWorkers removes the served-types entries of workers whose
// heartbeat is gone.
func pruneCatalogWorkers(ctx context.Context, rdb Client, now time.Time) error {
	ids, err := rdb.HKeys(ctx, catalogWorkersKey).Result()
	if err != nil || len(ids) == 0 {
		return err
	}
	scores, err := rdb.ZMScore(ctx, heartbeatsKey, ids...).Result()
	if err != nil {
		return err
	}
	var gone []string
	for i, s := range scores {
		if s < float64(now.Add(-time.Minute).UnixMilli()) { // 0 when absent
			gone = append(gone, ids[i])
		}
	}
	if len(gone) == 0 {
		return nil
	}
	return rdb.HDel(ctx, catalogWorkersKey, gone...).Err()
}
