package builtin_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jobforge/jobforge/jobs/builtin"
	"github.com/jobforge/jobforge/jobs/jobstest"
)

// BenchmarkPrimesHandler measures one attempt of the primes handler alone
// (payload decoding, sieve, progress calls into a recording reporter): the
// per-job CPU time that the CPU-efficiency benchmark (B6 of cmd/loadgen)
// divides the core count by to get the ideal throughput.
func BenchmarkPrimesHandler(b *testing.B) {
	for _, limit := range []int64{1_000_000, 10_000_000, 100_000_000} {
		b.Run(fmt.Sprintf("limit=%d", limit), func(b *testing.B) {
			jobstest.Benchmark(b, builtin.Primes, fmt.Sprintf(`{"limit":%d}`, limit))
		})
	}
}

// BenchmarkCountPrimes is the sieve without the handler around it.
func BenchmarkCountPrimes(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		if _, _, err := builtin.CountPrimes(ctx, 10_000_000, nil); err != nil {
			b.Fatal(err)
		}
	}
}
