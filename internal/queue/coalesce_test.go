package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/store"
)

// pipelineCounter counts the pipelines a client sends that run scripts.
type pipelineCounter struct{ n atomic.Int64 }

func (*pipelineCounter) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (*pipelineCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (c *pipelineCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			if cmd.Name() == "evalsha" {
				c.n.Add(1)
				break
			}
		}
		return next(ctx, cmds)
	}
}

// TestConcurrentCreates checks that creates sharing pipelines are each
// answered with their own outcome: every new job created once and readable,
// every repeated idempotency key answered with its one job, a full quota
// refusing exactly the creates beyond it.
func TestConcurrentCreates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := connectDB(t)
	var pipelines pipelineCounter
	rdb.AddHook(&pipelines)
	st := NewStore(rdb, slogDiscard(), StoreOptions{MaxWaitingPerTenant: 150})
	const n = 300 // 100 keys, each sent 3 times
	type outcome struct {
		rec     *store.Record
		existed bool
		err     error
	}
	out := make([]outcome, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			key := fmt.Sprintf("k%d", i%100)
			rec, existed, err := st.Create(ctx, store.NewJob{Tenant: "t", Type: "simulate", Queue: "default",
				Payload: json.RawMessage(`{}`), MaxAttempts: 1, Timeout: time.Minute, IdempotencyKey: key, RequestHash: key})
			out[i] = outcome{rec, existed, err}
		})
	}
	wg.Wait()
	byKey := map[string]string{}
	created := 0
	for i, o := range out {
		require.NoError(t, o.err, "create %d", i)
		key := fmt.Sprintf("k%d", i%100)
		if id, ok := byKey[key]; ok {
			require.Equal(t, id, o.rec.ID, "key %s answered with two jobs", key)
		}
		byKey[key] = o.rec.ID
		if !o.existed {
			created++
		}
		got, err := st.Get(ctx, "t", o.rec.ID)
		require.NoError(t, err)
		require.Equal(t, key, got.IdempotencyKey)
	}
	require.Equal(t, 100, created, "one job per key")
	t.Logf("%d creates in %d script pipelines", n, pipelines.n.Load())

	// 100 waiting jobs; 100 more without keys: 50 fit the quota of 150.
	var refused atomic.Int64
	for range 100 {
		wg.Go(func() {
			_, _, err := st.Create(ctx, store.NewJob{Tenant: "t", Type: "simulate", Queue: "default",
				Payload: json.RawMessage(`{}`), MaxAttempts: 1, Timeout: time.Minute})
			var q *store.QuotaError
			if err != nil {
				require.ErrorAs(t, err, &q)
				refused.Add(1)
			}
		})
	}
	wg.Wait()
	require.EqualValues(t, 50, refused.Load())
}

// sendTwice sends every script pipeline twice, as go-redis does when the
// connection fails after Redis ran the pipeline but before the replies
// came; the commands keep the second run's replies.
type sendTwice struct{}

func (sendTwice) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (sendTwice) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (sendTwice) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if err := next(ctx, cmds); err != nil {
			return err
		}
		return next(ctx, cmds)
	}
}

// TestCreateSentTwice checks that a create pipeline sent twice writes each
// job once: single and batched creates, new ids and a caller's id. (The
// second run finds the records of the first, so a job reads as existing.)
func TestCreateSentTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := connectDB(t)
	rdb.AddHook(sendTwice{})
	st := NewStore(rdb, slogDiscard())
	nj := func(id string) store.NewJob {
		return store.NewJob{ID: id, Tenant: "t", Type: "simulate", Queue: "default", Payload: json.RawMessage(`{}`),
			MaxAttempts: 1, Timeout: time.Minute}
	}
	var ids []string
	rec, _, err := st.Create(ctx, nj(""))
	require.NoError(t, err)
	ids = append(ids, rec.ID)
	for _, res := range st.CreateMany(ctx, []store.NewJob{nj(""), nj("given-id"), nj("")}, false) {
		require.NoError(t, res.Err)
		ids = append(ids, res.Record.ID)
	}
	require.Contains(t, ids, "given-id")
	require.Len(t, ids, 4)

	require.ElementsMatch(t, ids, rdb.LRange(ctx, asynqPendingKey("default"), 0, -1).Val(), "each job's task queued once")
	require.ElementsMatch(t, ids, rdb.ZRange(ctx, indexKey("default", "t"), 0, -1).Val())
	require.ElementsMatch(t, ids, rdb.ZRange(ctx, waitingKey("default", "t"), 0, -1).Val())
	for _, id := range ids {
		got, err := st.Get(ctx, "t", id)
		require.NoError(t, err)
		require.Equal(t, store.StatePending, got.State)
	}
}
