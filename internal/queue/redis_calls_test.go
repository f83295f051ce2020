package queue_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/queue"
	"github.com/jobforge/jobforge/internal/redistest"
	"github.com/jobforge/jobforge/internal/store"
	"github.com/jobforge/jobforge/jobs"
)

// Redis commands per job, as INFO commandstats counts them (commands run
// inside Lua scripts included). These are the recorded budgets of B8 in
// docs/benchmarks.md: a change that makes a job cost more Redis work fails
// here and must either be fixed or raise the budget on purpose.
//
// Connection set-up (HELLO, PING) is not counted: it is per connection,
// not per job.
const (
	budgetCreate      = 9.0  // Store.Create of one job: one createScript (record, index, quota, asynq task), wake-up
	budgetCreateBatch = 3.2  // per job of a Store.CreateMany of 100: two createScript calls (64 + 36 jobs) sharing the quota check and one ZADD/LPUSH per key, one round trip
	budgetRun         = 30.0 // one no-op attempt: dequeue, start, finish, asynq's completion
	// slack absorbs the odd idle poll that lands inside a measurement.
	slack = 0.5
)

// TestRedisCallsPerJob is benchmark B8 as a regression guard: it counts the
// Redis commands of creating and running no-op jobs on a dedicated
// redis-server and fails if the count per job exceeds its budget.
func TestRedisCallsPerJob(t *testing.T) {
	t.Parallel()
	srv := redistest.NewServer(t) // commandstats are server-wide: no sharing
	ctx := context.Background()
	rdb, err := queue.Connect(ctx, srv.URL(0))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	st := queue.NewStore(rdb, testLogger(t), queue.StoreOptions{MaxWaitingPerTenant: 100_000})

	newJob := func() store.NewJob {
		return store.NewJob{Tenant: "t", Type: "noop", Queue: "default", Payload: json.RawMessage(`{}`), MaxAttempts: 3, Timeout: time.Minute}
	}
	create := func(n int) {
		for range n {
			_, _, err := st.Create(ctx, newJob())
			require.NoError(t, err)
		}
	}
	create(1) // loads the scripts and registers the queue once

	const n = 100
	before := commandStats(t, rdb)
	create(n)
	perCreate, detail := perJob(commandStats(t, rdb), before, n)
	t.Logf("create: %.2f commands per job (%s)", perCreate, detail)
	require.LessOrEqual(t, perCreate, budgetCreate+slack, "Redis commands per Store.Create grew: %s", detail)

	batch := make([]store.NewJob, n)
	for i := range batch {
		batch[i] = newJob()
	}
	before = commandStats(t, rdb)
	for _, r := range st.CreateMany(ctx, batch, false) {
		require.NoError(t, r.Err)
	}
	perBatched, detail := perJob(commandStats(t, rdb), before, n)
	t.Logf("create in a batch of %d: %.2f commands per job (%s)", n, perBatched, detail)
	require.LessOrEqual(t, perBatched, budgetCreateBatch+slack, "Redis commands per job of Store.CreateMany grew: %s", detail)

	// Running jobs: a worker started on a queue of k jobs drains it and is
	// shut down. Its start-up and shutdown cost the same for any k, so the
	// difference between two runs divided by the difference in jobs is the
	// cost of one job.
	run := func(k int) map[string]cmdStat {
		require.NoError(t, rdb.FlushAll(ctx).Err())
		create(k)
		var done atomic.Int64
		noop := jobs.Define(jobs.Spec[struct{}, struct{}]{
			Name: "noop", Timeout: time.Minute,
			Handle: func(context.Context, *jobs.Job, struct{}) (struct{}, error) { done.Add(1); return struct{}{}, nil },
		})
		reg, err := jobs.NewRegistry(noop)
		require.NoError(t, err)
		w := queue.NewWorker(rdb, reg, queue.WorkerOptions{
			Pools:                []queue.Pool{{Name: "io", Queues: map[string]int{"default": 1}, Concurrency: 4}},
			PollInterval:         20 * time.Millisecond,
			DelayedCheckInterval: time.Minute,
			CancelCheckInterval:  time.Hour,
			ShutdownTimeout:      5 * time.Second,
			Retention:            time.Hour,
			Logger:               testLogger(t),
		})
		stats := commandStats(t, rdb)
		require.NoError(t, w.Start())
		redistest.Eventually(t, 30*time.Second, func() bool { return done.Load() == int64(k) }, "%d jobs ran", k)
		w.Shutdown() // lets the last attempts record their outcome
		return diffStats(commandStats(t, rdb), stats)
	}
	small, large := run(20), run(20+n)
	perRun, detail := perJob(large, small, n)
	t.Logf("run: %.2f commands per job (%s)", perRun, detail)
	require.LessOrEqual(t, perRun, budgetRun+slack, "Redis commands per job run grew: %s", detail)
	t.Logf("lifecycle: %.2f commands per job (create %.2f + run %.2f)", perCreate+perRun, perCreate, perRun)
}

type cmdStat struct{ calls int64 }

func commandStats(t *testing.T, rdb redis.UniversalClient) map[string]cmdStat {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	require.NoError(t, err)
	out := map[string]cmdStat{}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		name, rest, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
		n, err := strconv.ParseInt(calls, 10, 64)
		require.NoError(t, err)
		out[strings.TrimPrefix(name, "cmdstat_")] = cmdStat{calls: n}
	}
	return out
}

func diffStats(after, before map[string]cmdStat) map[string]cmdStat {
	out := map[string]cmdStat{}
	for k, v := range after {
		if d := v.calls - before[k].calls; d != 0 {
			out[k] = cmdStat{calls: d}
		}
	}
	delete(out, "info") // this test's own reads
	delete(out, "hello")
	delete(out, "ping")
	return out
}

// perJob returns the commands per job between two snapshots (or deltas)
// and a per-command breakdown.
func perJob(after, before map[string]cmdStat, n int) (float64, string) {
	d := diffStats(after, before)
	var total int64
	parts := make([]string, 0, len(d))
	for _, k := range slices.Sorted(maps.Keys(d)) {
		total += d[k].calls
		parts = append(parts, fmt.Sprintf("%s %.2f", k, float64(d[k].calls)/float64(n)))
	}
	return float64(total) / float64(n), strings.Join(parts, ", ")
}
