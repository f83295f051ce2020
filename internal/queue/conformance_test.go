package queue_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/queue"
	"github.com/jobforge/jobforge/internal/redistest"
	"github.com/jobforge/jobforge/internal/store/storetest"
	"github.com/jobforge/jobforge/jobs"
)

// The Redis store passes the storage seam's conformance suite, each case
// on a database of its own.
func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Exercise(t, func(t *testing.T, opts storetest.Options) storetest.Harness {
		rdb, err := queue.Connect(context.Background(), redistest.NewDB(t))
		require.NoError(t, err)
		t.Cleanup(func() { _ = rdb.Close() })
		return conformanceHarness(t, rdb, opts)
	})
}

// The same through Redis Sentinel, with passwords of their own on the
// master and the sentinel and non-zero databases (one per case).
func TestConformanceSentinel(t *testing.T) {
	t.Parallel()
	master := redistest.NewServer(t, redistest.Args("--requirepass", masterPassword, "--databases", "128"))
	sentinel := redistest.NewSentinel(t, master, redistest.SentinelOptions{
		MasterName: masterName, MasterPassword: masterPassword, Password: sentinelPassword,
	})
	var db atomic.Int32
	storetest.Exercise(t, func(t *testing.T, opts storetest.Options) storetest.Harness {
		rdb, err := queue.ConnectConfig(context.Background(), queue.RedisConfig{
			SentinelMaster: masterName, SentinelAddrs: []string{sentinel.Addr()},
			SentinelPassword: sentinelPassword, Password: masterPassword, DB: int(db.Add(1)),
		})
		require.NoError(t, err)
		t.Cleanup(func() { _ = rdb.Close() })
		return conformanceHarness(t, rdb, opts)
	})
}

// The same on a real 3-master Redis Cluster, where a job's keys and its
// queue's asynq keys must share a slot for every script. A Cluster has one
// database, so cases take a Cluster of their own from a pool and flush it
// when they end.
func TestConformanceCluster(t *testing.T) {
	t.Parallel()
	pool := make(chan *redistest.Cluster, 4)
	for range cap(pool) {
		pool <- redistest.NewCluster(t, redistest.ClusterOptions{Password: masterPassword})
	}
	storetest.Exercise(t, func(t *testing.T, opts storetest.Options) storetest.Harness {
		c := <-pool
		rdb, err := queue.Connect(context.Background(), c.URL())
		require.NoError(t, err)
		t.Cleanup(func() {
			// Runs last: the worker and the store have stopped.
			ctx := context.Background()
			err := rdb.(*redis.ClusterClient).ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
				return n.FlushAll(ctx).Err()
			})
			_ = rdb.Close()
			if err != nil {
				t.Errorf("flush cluster: %v", err)
				return // not back in the pool
			}
			pool <- c
		})
		return conformanceHarness(t, rdb, opts)
	})
}

// conformanceHarness is a Store on rdb with the suite's options, closed
// when the case ends, and its worker.
func conformanceHarness(t *testing.T, rdb queue.Client, opts storetest.Options) storetest.Harness {
	st := queue.NewStore(rdb, testLogger(t), queue.StoreOptions{
		Retention: opts.Retention, MaxWaitingPerTenant: opts.MaxWaitingPerTenant,
	})
	t.Cleanup(func() { _ = st.Close() })
	return storetest.Harness{
		Store:       st,
		StartWorker: func(t *testing.T, types ...*jobs.Type) { startConformanceWorker(t, rdb, opts, types) },
	}
}

func startConformanceWorker(t *testing.T, rdb queue.Client, opts storetest.Options, types []*jobs.Type) {
	reg, err := jobs.NewRegistry(types...)
	require.NoError(t, err)
	w := queue.NewWorker(rdb, reg, queue.WorkerOptions{
		Pools:                []queue.Pool{{Name: "conformance", Queues: map[string]int{storetest.Queue: 1}, Concurrency: 4}},
		PollInterval:         5 * time.Millisecond,
		DelayedCheckInterval: 20 * time.Millisecond,
		ShutdownTimeout:      2 * time.Second,
		Retention:            opts.Retention,
		Backoff:              func(int) time.Duration { return 5 * time.Millisecond },
		Logger:               testLogger(t),
	})
	require.NoError(t, w.Start())
	t.Cleanup(w.Shutdown)
}
