package queue

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/store"
)

// TestMigrateFromLayout1 writes jobs as the previous key layout kept them
// (each job's keys tagged with its id, a tenant's index, waiting set and
// idempotency keys with the tenant) and checks that Migrate moves them so
// that the store reads, lists, deduplicates and runs them as before, keeps
// their expiry, drops what pointed at expired jobs, and runs only once.
func TestMigrateFromLayout1(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := connectDB(t)
	now := time.Now()
	us := func(t time.Time) string { return micros(t) }

	// A finished job in queue critical (expires in an hour), a pending one
	// in default with an idempotency key, and index, waiting and
	// idempotency entries of a job that expired.
	old := func(id string) string { return "jobforge:job:{" + id + "}" }
	done, pending, gone := "0190a000-0000-7000-8000-000000000001", "0190a000-0000-7000-8000-000000000002", "0190a000-0000-7000-8000-000000000003"
	pipe := rdb.Pipeline()
	pipe.HSet(ctx, old(done), fTenant, "t", fType, "simulate", fQueue, "critical", fState, "SUCCEEDED", fPayload, "{}",
		fMaxAttempts, 1, fAttempts, 1, fCreate, us(now.Add(-2*time.Second)), fUpdate, us(now), fResult, `"ok"`)
	pipe.Expire(ctx, old(done), time.Hour)
	pipe.XAdd(ctx, &redis.XAddArgs{Stream: old(done) + ":events", Values: []string{"k", "S", "s", "SUCCEEDED", "a", "1", "t", us(now)}})
	pipe.Expire(ctx, old(done)+":events", time.Hour)
	pipe.RPush(ctx, old(done)+":errors", `{"message":"boom","attempt":1}`)
	pipe.HSet(ctx, old(pending), fTenant, "t", fType, "simulate", fQueue, "default", fState, "PENDING", fPayload, "{}",
		fMaxAttempts, 1, fAttempts, 0, fCreate, us(now.Add(-time.Second)), fUpdate, us(now), fIdemKey, "k1")
	pipe.ZAdd(ctx, "jobforge:index:{t}",
		redis.Z{Score: float64(now.Add(-2 * time.Second).UnixMicro()), Member: done},
		redis.Z{Score: float64(now.Add(-time.Second).UnixMicro()), Member: pending},
		redis.Z{Score: float64(now.Add(-3 * time.Second).UnixMicro()), Member: gone})
	pipe.ZAdd(ctx, "jobforge:waiting:{t}", redis.Z{Score: float64(now.UnixMicro()), Member: pending})
	pipe.Set(ctx, "jobforge:idem:{t}:k1", pending+" h1", time.Hour)
	pipe.Set(ctx, "jobforge:idem:{t}:k2", gone+" h2", time.Hour)
	pipe.RPush(ctx, old(gone)+":errors", `{"message":"left over","attempt":1}`)
	pipe.SAdd(ctx, asynqAllQueues, "default", "critical")
	_, err := pipe.Exec(ctx)
	require.NoError(t, err)

	require.NoError(t, Migrate(ctx, rdb, slogDiscard()))

	st := NewStore(rdb, slogDiscard())
	got, err := st.Get(ctx, "t", done)
	require.NoError(t, err)
	require.Equal(t, store.StateSucceeded, got.State)
	require.Equal(t, "critical", got.Queue)
	require.JSONEq(t, `"ok"`, string(got.Result))
	require.Len(t, got.AttemptErrors, 1)
	for _, k := range []string{jobKey("critical", done), eventsKey("critical", done)} {
		ttl, err := rdb.TTL(ctx, k).Result()
		require.NoError(t, err)
		require.Greater(t, ttl, 59*time.Minute, "%s keeps its expiry", k)
	}

	recs, _, err := st.List(ctx, store.ListQuery{Tenant: "t", Limit: 10})
	require.NoError(t, err)
	require.Equal(t, []string{pending, done}, []string{recs[0].ID, recs[1].ID}, "newest first, the expired job's entry dropped")
	require.Len(t, recs, 2)
	require.Equal(t, []string{pending}, rdb.ZRange(ctx, waitingKey("default", "t"), 0, -1).Val())

	// The idempotency key still names its job.
	again, existed, err := st.Create(ctx, store.NewJob{Tenant: "t", Type: "simulate", Queue: "default", Payload: json.RawMessage(`{}`),
		MaxAttempts: 1, Timeout: time.Minute, IdempotencyKey: "k1", RequestHash: "h1"})
	require.NoError(t, err)
	require.True(t, existed)
	require.Equal(t, pending, again.ID)

	// Nothing of layout 1 is left, and the layout is recorded.
	for _, pattern := range []string{"jobforge:job:*", "jobforge:index:*", "jobforge:waiting:*", "jobforge:idem:*"} {
		keys, err := rdb.Keys(ctx, pattern).Result()
		require.NoError(t, err)
		require.Empty(t, keys, pattern)
	}
	require.Equal(t, layoutCurrent, rdb.Get(ctx, layoutKey).Val())

	// A second run (the next process to start) changes nothing.
	before, err := rdb.Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.NoError(t, Migrate(ctx, rdb, slogDiscard()))
	after, err := rdb.Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.ElementsMatch(t, before, after)
}

// TestMigrateRefusesNewerLayout checks that a process does not touch keys
// a newer version wrote.
func TestMigrateRefusesNewerLayout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := connectDB(t)
	require.NoError(t, rdb.Set(ctx, layoutKey, "3", 0).Err())
	require.ErrorContains(t, Migrate(ctx, rdb, slogDiscard()), "layout 3, newer than this version's (2)")
}
