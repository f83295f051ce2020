package queue

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobforge/jobforge/internal/redistest"
	"github.com/jobforge/jobforge/internal/store"
)

// BenchmarkNewWrite builds the script arguments of one new job (record,
// asynq task, keys), the API's share of a create's work before Redis.
func BenchmarkNewWrite(b *testing.B) {
	st := &Store{now: time.Now, idemWindow: time.Hour}
	ctx := context.Background()
	nj := store.NewJob{
		ID: "01a23c17-427c-70d8-b0c2-d43fc31b0d36", Tenant: "bench", Type: "simulate", Queue: "default",
		Payload: json.RawMessage("{}"), MaxAttempts: 3, Timeout: time.Hour,
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = st.newWrite(ctx, nj, &tenantKeys{})
	}
}

// BenchmarkCreateMany creates batches of 100 jobs on a real redis-server
// of its own and reports the server's CPU per job (INFO cpu) next to the
// time per batch.
func BenchmarkCreateMany(b *testing.B) {
	ctx := context.Background()
	srv := redistest.NewServer(b)
	rdb, err := Connect(ctx, srv.URL(0))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rdb.Close() })
	st := NewStore(rdb, slogDiscard())
	jobs := make([]store.NewJob, 100)
	for i := range jobs {
		jobs[i] = store.NewJob{Tenant: "bench", Type: "simulate", Queue: "default", Payload: json.RawMessage("{}"), MaxAttempts: 3, Timeout: time.Hour}
	}
	before := redisCPU(b, rdb)
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range st.CreateMany(ctx, jobs, false) {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
	b.ReportMetric(float64((redisCPU(b, rdb)-before).Microseconds())/float64(b.N*len(jobs)), "redis-µs/job")
}

// redisCPU is the CPU time the server used so far (user and system).
func redisCPU(tb testing.TB, rdb redis.UniversalClient) time.Duration {
	info, err := rdb.InfoMap(context.Background(), "cpu").Result()
	if err != nil {
		tb.Fatal(err)
	}
	var sum float64
	for _, k := range []string{"used_cpu_user", "used_cpu_sys"} {
		v, err := strconv.ParseFloat(info["CPU"][k], 64)
		if err != nil {
			tb.Fatal(err)
		}
		sum += v
	}
	return time.Duration(sum * float64(time.Second))
}
