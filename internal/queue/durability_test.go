package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/queue"
	"github.com/jobforge/jobforge/internal/redistest"
	"github.com/jobforge/jobforge/internal/store"
)

// TestCreateWaitsForReplicas runs creates against a primary with one
// replica: with MinReplicas 1 they are acknowledged once the replica has
// them (the replica holds the record when Create returns); with
// MinReplicas 2, more than there are, every create answers
// ErrNotReplicated (a retry-later error) after ReplicaTimeout, the write
// stays on the primary, a retry with the same idempotency key finds it,
// and an all-or-nothing batch is undone.
func TestCreateWaitsForReplicas(t *testing.T) {
	t.Parallel()
	primary := redistest.NewServer(t)
	_, port, err := net.SplitHostPort(primary.Addr())
	require.NoError(t, err)
	replica := redistest.NewServer(t, redistest.Args("--replicaof", "127.0.0.1", port))
	ctx := context.Background()

	prdb, err := queue.Connect(ctx, primary.URL(0))
	require.NoError(t, err)
	t.Cleanup(func() { _ = prdb.Close() })
	replicaRDB := redis.NewClient(&redis.Options{Addr: replica.Addr()})
	t.Cleanup(func() { _ = replicaRDB.Close() })
	redistest.Eventually(t, 10*time.Second, func() bool {
		info, err := prdb.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online")
	}, "replica did not come online")

	newJob := func(key string) store.NewJob {
		return store.NewJob{Tenant: "t", Type: "simulate", Queue: "default", Payload: json.RawMessage(`{}`),
			MaxAttempts: 1, Timeout: time.Minute, IdempotencyKey: key, RequestHash: "h"}
	}
	onReplica := func(t *testing.T, id string) bool {
		t.Helper()
		n, err := replicaRDB.Exists(ctx, "jobforge:{default}:job:"+id).Result()
		require.NoError(t, err)
		return n == 1
	}

	t.Run("enough replicas", func(t *testing.T) {
		st := queue.NewStore(prdb, testLogger(t), queue.StoreOptions{MinReplicas: 1, ReplicaTimeout: 900 * time.Millisecond})
		t.Cleanup(func() { _ = st.Close() })
		// A replica starved of CPU (the race detector, parallel tests) may
		// miss the timeout: the client then retries with its key, as the
		// API tells it to. What must hold is that an acknowledged create
		// is on the replica.
		var rec *store.Record
		redistest.Eventually(t, 10*time.Second, func() bool {
			var err error
			rec, _, err = st.Create(ctx, newJob("enough-1"))
			require.True(t, err == nil || errors.Is(err, store.ErrNotReplicated), "%v", err)
			return err == nil
		}, "no create was acknowledged")
		require.True(t, onReplica(t, rec.ID), "acknowledged before the replica had it")

		redistest.Eventually(t, 10*time.Second, func() bool {
			results := st.CreateMany(ctx, []store.NewJob{newJob("enough-2"), newJob("enough-3")}, true)
			for _, r := range results {
				if r.Err != nil {
					require.ErrorIs(t, r.Err, store.ErrNotReplicated)
					return false
				}
				require.True(t, onReplica(t, r.Record.ID), "acknowledged before the replica had it")
			}
			return true
		}, "no batch was acknowledged")
	})

	t.Run("too few replicas", func(t *testing.T) {
		const timeout = 50 * time.Millisecond
		st := queue.NewStore(prdb, testLogger(t), queue.StoreOptions{MinReplicas: 2, ReplicaTimeout: timeout})
		t.Cleanup(func() { _ = st.Close() })
		start := time.Now()
		_, _, err := st.Create(ctx, newJob("k1"))
		require.ErrorIs(t, err, store.ErrNotReplicated)
		require.ErrorIs(t, err, store.ErrUnavailable, "a retry-later error")
		require.GreaterOrEqual(t, time.Since(start), timeout, "answered before the wait was over")
		require.Contains(t, err.Error(), "of 2 replicas")

		// The write itself was made: the retry with the same key finds
		// the job (and still says it is not on enough replicas).
		plain := queue.NewStore(prdb, testLogger(t))
		t.Cleanup(func() { _ = plain.Close() })
		rec, existed, err := plain.Create(ctx, newJob("k1"))
		require.NoError(t, err)
		require.True(t, existed)

		results := st.CreateMany(ctx, []store.NewJob{newJob(""), newJob("")}, true)
		for _, r := range results {
			require.ErrorIs(t, r.Err, store.ErrNotReplicated)
		}
		results = st.CreateMany(ctx, []store.NewJob{newJob("")}, false)
		require.ErrorIs(t, results[0].Err, store.ErrNotReplicated)
		require.NotNil(t, results[0].Record, "a batch that is not all-or-nothing keeps the job")
		_, err = plain.Get(ctx, "t", results[0].Record.ID)
		require.NoError(t, err)
		_, err = plain.Get(ctx, "t", rec.ID)
		require.NoError(t, err)
	})

	t.Run("undone batch", func(t *testing.T) {
		st := queue.NewStore(prdb, testLogger(t), queue.StoreOptions{MinReplicas: 2, ReplicaTimeout: 20 * time.Millisecond})
		t.Cleanup(func() { _ = st.Close() })
		plain := queue.NewStore(prdb, testLogger(t))
		t.Cleanup(func() { _ = plain.Close() })
		jobs := []store.NewJob{newJob(""), newJob("")}
		jobs[0].ID, jobs[1].ID = "11111111-0000-7000-8000-000000000001", "11111111-0000-7000-8000-000000000002"
		for _, r := range st.CreateMany(ctx, jobs, true) {
			require.ErrorIs(t, r.Err, store.ErrNotReplicated)
		}
		for _, j := range jobs {
			_, err := plain.Get(ctx, "t", j.ID)
			require.True(t, errors.Is(err, store.ErrNotFound), "job %s of an undone batch is still there: %v", j.ID, err)
		}
	})
}

// TestClusterCreateWaitsForItsOwnReplica checks that on a Redis Cluster the
// replica wait follows each create to its queue's master: with the replica
// of one master stopped, a batch over two queues on different masters
// creates the job of the healthy one and answers ErrNotReplicated for the
// other. A WAIT sent to any other node would confirm both.
func TestClusterCreateWaitsForItsOwnReplica(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rc := redistest.NewCluster(t, redistest.ClusterOptions{Replicas: 1})
	rdb, err := queue.Connect(ctx, rc.URL())
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	cc := rdb.(*redis.ClusterClient)

	// Two queues whose slots are on different masters.
	masterOf := func(q string) string {
		n, err := cc.MasterForKey(ctx, "asynq:{"+q+"}:pending")
		require.NoError(t, err)
		return n.Options().Addr
	}
	healthy, starved := "default", ""
	for _, q := range []string{"critical", "low", "cpu", "io", "reports", "emails"} {
		if masterOf(q) != masterOf(healthy) {
			starved = q
			break
		}
	}
	require.NotEmpty(t, starved, "no two queues on different masters")

	// Stop the replica of the starved queue's master.
	replicas, err := rc.ReplicasOf(masterOf(starved))
	require.NoError(t, err)
	require.Len(t, replicas, 1)
	rc.Node(replicas[0]).Stop()

	st := queue.NewStore(rdb, testLogger(t), queue.StoreOptions{MinReplicas: 1, ReplicaTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = st.Close() })
	newJob := func(q string) store.NewJob {
		return store.NewJob{Tenant: "t", Type: "simulate", Queue: q, Payload: json.RawMessage(`{}`), MaxAttempts: 1, Timeout: time.Minute}
	}
	res := st.CreateMany(ctx, []store.NewJob{newJob(healthy), newJob(starved)}, false)
	require.NoError(t, res[0].Err, "the healthy master's replica confirms")
	require.ErrorIs(t, res[1].Err, store.ErrNotReplicated)
	require.ErrorIs(t, res[1].Err, store.ErrUnavailable)
	_, _, err = st.Create(ctx, newJob(healthy))
	require.NoError(t, err)
	_, _, err = st.Create(ctx, newJob(starved))
	require.ErrorIs(t, err, store.ErrNotReplicated)
}
