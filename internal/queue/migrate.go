package queue

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Key layouts. Layout 1 tagged a job's keys with its id and a tenant's
// index, waiting set and idempotency keys with the tenant; layout 2 puts
// them all in the job's queue's slot (queue.go), which Redis Cluster needs.
const (
	layoutKey     = keyPrefix + "layout"
	layoutLockKey = keyPrefix + "layout:migrating"
	layoutCurrent = "2"
)

// How long a process waits for another one's migration, and how long a
// migration may hold its lock without renewing it.
const (
	migrateWait = 5 * time.Minute
	migrateLock = 30 * time.Second
)

// Migrate brings the keys of a Redis that jobforge used before to the
// current layout, once: the first process of a new version to start does
// it (under a lock) while the others wait for it. Processes of the old
// version must be stopped first: their writes would go to the old keys.
// On a Redis Cluster there is nothing to migrate (layout 1 could not run
// there).
func Migrate(ctx context.Context, rdb Client, log *slog.Logger) error {
	switch v, err := rdb.Get(ctx, layoutKey).Result(); {
	case errors.Is(err, redis.Nil): // not recorded: migrate
	case err != nil:
		return fmt.Errorf("read key layout: %w", err)
	case v == layoutCurrent:
		return nil
	default:
		return fmt.Errorf("this Redis holds jobforge keys of layout %s, newer than this version's (%s): run the newer version", v, layoutCurrent)
	}
	if _, ok := rdb.(*redis.ClusterClient); ok {
		return rdb.Set(ctx, layoutKey, layoutCurrent, 0).Err()
	}
	// The migration lease, held and renewed like the other leases
	// (queuestats.go); the processes that do not get it wait for the
	// layout to be recorded.
	holder := rand.Text()
	lease := func(ctx context.Context) (bool, error) {
		n, err := acquireLeaseScript.Run(ctx, rdb, []string{layoutLockKey}, holder, migrateLock.Milliseconds()).Int()
		return n == 1, err
	}
	deadline := time.Now().Add(migrateWait)
	for {
		held, err := lease(ctx)
		if err != nil {
			return fmt.Errorf("lock key layout migration: %w", err)
		}
		if held {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("another process has been migrating the key layout for too long; see its log")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if v, _ := rdb.Get(ctx, layoutKey).Result(); v == layoutCurrent {
			return nil
		}
	}
	defer releaseLeaseScript.Run(context.WithoutCancel(ctx), rdb, []string{layoutLockKey}, holder)
	renew, stopRenew := context.WithCancel(ctx)
	defer stopRenew()
	go every(renew, migrateLock/3, func(ctx context.Context) { _, _ = lease(ctx) })
	if v, _ := rdb.Get(ctx, layoutKey).Result(); v == layoutCurrent {
		return nil // done by the previous holder
	}
	start := time.Now()
	n, err := migrateFrom1(ctx, rdb)
	if err != nil {
		return fmt.Errorf("migrate key layout 1 to 2: %w", err)
	}
	if err := rdb.Set(ctx, layoutKey, layoutCurrent, 0).Err(); err != nil {
		return fmt.Errorf("record key layout: %w", err)
	}
	if n.jobs+n.index+n.idem > 0 {
		log.Info("migrated jobforge keys to layout 2 (each job's keys in its queue's slot)", "jobs", n.jobs,
			"index_entries", n.index, "idempotency_keys", n.idem, "dropped", n.dropped, "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}

type migrated struct{ jobs, index, idem, dropped int }

// migrateJobScript renames one job's keys of layout 1 to layout 2 (TTLs
// are kept). KEYS: old record, events, errors, new record, events, errors.
// Only on a single Redis: the keys are in different slots.
var migrateJobScript = redis.NewScript(`
for i = 1, 3 do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('RENAME', KEYS[i], KEYS[i + 3]) end
end
return 1`)

// migrateFrom1 moves every layout-1 key: job keys first (each job's queue
// is in its record), then tenants' indexes, waiting sets and idempotency
// keys, which need the queue of the job they name. Entries of jobs that no
// longer exist are dropped.
func migrateFrom1(ctx context.Context, rdb Client) (migrated, error) {
	var n migrated
	queueOf := map[string]string{}
	err := scanKeys(ctx, rdb, keyPrefix+"job:{*}", func(key string) error {
		id := strings.TrimSuffix(strings.TrimPrefix(key, keyPrefix+"job:{"), "}")
		if strings.Contains(id, "}") {
			return nil // events or errors: moved with the record
		}
		q, err := rdb.HGet(ctx, key, fQueue).Result()
		if err != nil {
			return fmt.Errorf("read queue of job %s: %w", id, err)
		}
		old := keyPrefix + "job:{" + id + "}"
		if err := migrateJobScript.Run(ctx, rdb, []string{old, old + ":events", old + ":errors",
			jobKey(q, id), eventsKey(q, id), errorsKey(q, id)}).Err(); err != nil {
			return fmt.Errorf("move job %s: %w", id, err)
		}
		queueOf[id] = q
		n.jobs++
		return nil
	})
	if err != nil {
		return n, err
	}
	// Events and errors whose record had already expired.
	err = scanKeys(ctx, rdb, keyPrefix+"job:{*}:*", func(key string) error { return rdb.Del(ctx, key).Err() })
	if err != nil {
		return n, err
	}
	queues, err := rdb.SMembers(ctx, asynqAllQueues).Result()
	if err != nil {
		return n, fmt.Errorf("read the set of queues: %w", err)
	}
	lookup := func(id string) (string, error) {
		if q, ok := queueOf[id]; ok {
			return q, nil
		}
		// Moved by an earlier, interrupted run of the migration?
		for _, q := range queues {
			if ok, err := rdb.Exists(ctx, jobKey(q, id)).Result(); err != nil {
				return "", err
			} else if ok == 1 {
				queueOf[id] = q
				return q, nil
			}
		}
		return "", nil // expired before the migration
	}
	for _, set := range []struct {
		old string
		new func(q, tenant string) string
	}{{"index", indexKey}, {"waiting", waitingKey}} {
		err := scanKeys(ctx, rdb, keyPrefix+set.old+":{*}", func(key string) error {
			tenant := strings.TrimSuffix(strings.TrimPrefix(key, keyPrefix+set.old+":{"), "}")
			entries, err := rdb.ZRangeWithScores(ctx, key, 0, -1).Result()
			if err != nil {
				return err
			}
			pipe := rdb.Pipeline()
			for _, e := range entries {
				id, _ := e.Member.(string)
				q, err := lookup(id)
				if err != nil {
					return err
				}
				if q == "" {
					n.dropped++
					continue
				}
				pipe.ZAdd(ctx, set.new(q, tenant), redis.Z{Score: e.Score, Member: id})
				n.index++
			}
			pipe.Del(ctx, key)
			_, err = pipe.Exec(ctx)
			return err
		})
		if err != nil {
			return n, fmt.Errorf("move %s entries: %w", set.old, err)
		}
	}
	err = scanKeys(ctx, rdb, keyPrefix+"idem:{*}:*", func(key string) error {
		rest := strings.TrimPrefix(key, keyPrefix+"idem:{")
		tenant, idem, ok := strings.Cut(rest, "}:")
		if !ok {
			return nil
		}
		v, err := rdb.Get(ctx, key).Result()
		if errors.Is(err, redis.Nil) {
			return nil // expired meanwhile
		}
		if err != nil {
			return err
		}
		id, _, _ := strings.Cut(v, " ")
		q, err := lookup(id)
		if err != nil {
			return err
		}
		if q != "" {
			n.idem++
			return rdb.Rename(ctx, key, idemKey(q, tenant, idem)).Err()
		}
		n.dropped++
		return rdb.Del(ctx, key).Err()
	})
	if err != nil {
		return n, fmt.Errorf("move idempotency keys: %w", err)
	}
	return n, nil
}

// scanKeys calls fn for every key matching pattern. Keys fn renames may
// be met again under their new names only if those match pattern too,
// which layout 2's do not.
func scanKeys(ctx context.Context, rdb Client, pattern string, fn func(key string) error) error {
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return fmt.Errorf("scan %s: %w", pattern, err)
		}
		for _, k := range keys {
			if err := fn(k); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}
