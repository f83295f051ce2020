package jobstest

import (
	"context"
	"testing"

	"github.com/jobforge/jobforge/jobs"
)

// Benchmark runs one attempt of typ with a JSON payload per iteration, as a
// worker would but without Redis: progress goes to a Reporter that drops it.
// It fails b if an attempt fails.
func Benchmark(b *testing.B, typ *jobs.Type, payload string) {
	b.Helper()
	ctx := context.Background()
	job := jobs.NewJob("bench-job", typ.Name(), 1, typ.MaxAttempts(), discard{})
	p := []byte(payload)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := typ.Run(ctx, job, p); err != nil {
			b.Fatalf("%s %s: %v", typ.Name(), payload, err)
		}
	}
}

type discard struct{}

func (discard) ReportProgress(context.Context, int, string) error { return nil }
