package queue

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jobforge/jobforge/internal/store"
)

// BenchmarkGet reads a job by id from a store that knows four queues:
// "remembered" asks only the job's queue (the store created or read the
// job before), "fan-out" asks all four in the same round trip.
func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	rdb := connectDB(b)
	st := NewStore(rdb, slogDiscard())
	for _, q := range []string{"critical", "low", "cpu"} {
		st.known.add(q)
	}
	rec, _, err := st.Create(ctx, store.NewJob{Tenant: "t", Type: "simulate", Queue: "default", Payload: json.RawMessage(`{}`), MaxAttempts: 1, Timeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("remembered", func(b *testing.B) {
		for b.Loop() {
			if _, err := st.Get(ctx, "t", rec.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fan-out", func(b *testing.B) {
		for b.Loop() {
			st.jobQueues.forget(rec.ID)
			if _, err := st.Get(ctx, "t", rec.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
}
