package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobforge/jobforge/internal/store"
)

// watchBlock bounds one blocking read, so a cancelled watcher is noticed.
const watchBlock = time.Second

// DefaultMaxWatchers bounds concurrent watches per process (see
// StoreOptions.MaxWatchers). Each holds a Redis connection while it blocks
// on its event stream, so watches get their own connection pool rather
// than starving the shared one.
const DefaultMaxWatchers = 1000

type watchPool struct {
	once sync.Once
	rdb  redis.UniversalClient // own pool when rdb is a single-node client
	own  bool
	sem  chan struct{}
}

func (s *Store) watchClient() (redis.UniversalClient, chan struct{}) {
	s.watch.once.Do(func() {
		s.watch.sem = make(chan struct{}, s.maxWatchers)
		s.watch.rdb = s.rdb
		if c, ok := newClientLike(s.rdb, func(o *redis.Options) {
			o.PoolSize, o.MinIdleConns, o.MaxIdleConns = s.maxWatchers, 0, 16
		}); ok {
			s.watch.rdb, s.watch.own = c, true
		}
	})
	return s.watch.rdb, s.watch.sem
}

// Close releases the store's own connections (the watch pool). The Redis
// client passed to NewStore stays open.
func (s *Store) Close() error {
	if s.watch.own {
		return s.watch.rdb.Close()
	}
	return nil
}

// Watch calls fn with the job's events until the job is finished, fn
// returns an error, or ctx is done. Without after it first sends a snapshot
// of the current record, whose ID is the last event it already reflects;
// with after it sends only the events that follow that id.
func (s *Store) Watch(ctx context.Context, tenant, id, after string, fn func(store.Event) error) (err error) {
	defer markUnavailable(&err)
	rec, err := s.Get(ctx, tenant, id)
	if err != nil {
		return err
	}
	rdb, sem := s.watchClient()
	select {
	case sem <- struct{}{}:
		defer func() { <-sem }()
	default:
		return store.ErrTooManyWatchers
	}
	key, q := eventsKey(rec.Queue, id), rec.Queue
	if after == "" {
		// Snapshot and its position in the stream, read together.
		pipe := s.rdb.TxPipeline()
		hget := pipe.HGetAll(ctx, jobKey(q, id))
		errs := pipe.LRange(ctx, errorsKey(q, id), 0, -1)
		last := pipe.XRevRangeN(ctx, key, "+", "-", 1)
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("read job snapshot: %w", err)
		}
		if len(hget.Val()) == 0 {
			return store.ErrNotFound
		}
		rec, err = decodeRecord(id, hget.Val(), errs.Val(), s.now())
		if err != nil {
			return err
		}
		after = "0-0"
		if msgs := last.Val(); len(msgs) > 0 {
			after = msgs[0].ID
		}
		if err := fn(store.Event{ID: after, Kind: store.EventSnapshot, Time: rec.UpdateTime, State: rec.State, Attempt: rec.Attempts, Snapshot: rec}); err != nil {
			return err
		}
		if rec.State.Terminal() {
			return nil
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		streams, err := rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{key, after}, Count: 100, Block: watchBlock}).Result()
		if errors.Is(err, redis.Nil) {
			// Nothing new: stop if the job expired meanwhile, or finished
			// with its terminal event at or before the resume point (a
			// resume after the last event of a finished job).
			st, err := s.rdb.HGet(ctx, jobKey(q, id), fState).Result()
			if errors.Is(err, redis.Nil) {
				return store.ErrNotFound
			}
			if err != nil {
				return fmt.Errorf("watch job: %w", err)
			}
			if store.State(st).Terminal() {
				// The terminal event may have been added since the read.
				rest, err := s.rdb.XRange(ctx, key, "("+after, "+").Result()
				if err != nil {
					return fmt.Errorf("watch job: %w", err)
				}
				for _, m := range rest {
					if err := fn(decodeEvent(m)); err != nil {
						return err
					}
				}
				return nil
			}
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("watch job: %w", err)
		}
		for _, st := range streams {
			for _, m := range st.Messages {
				ev := decodeEvent(m)
				after = m.ID
				if err := fn(ev); err != nil {
					return err
				}
				if ev.Kind == store.EventState && ev.State.Terminal() {
					return nil
				}
			}
		}
	}
}

func decodeEvent(m redis.XMessage) store.Event {
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	ev := store.Event{ID: m.ID, Time: parseMicros(str("t")), State: store.State(str("s"))}
	ev.Attempt, _ = strconv.Atoi(str("a"))
	switch str("k") {
	case "P":
		ev.Kind = store.EventProgress
		ev.State = store.StateRunning
		ev.Progress.Percent, _ = strconv.Atoi(str("p"))
		ev.Progress.Message = str("m")
		ev.Progress.UpdateTime = ev.Time
	default:
		ev.Kind = store.EventState
	}
	if r := str("r"); r != "" {
		ev.Result = json.RawMessage(r)
	}
	if e := str("e"); e != "" {
		var ae store.AttemptError
		if json.Unmarshal([]byte(e), &ae) == nil {
			ev.Error = &ae
		}
	}
	return ev
}
