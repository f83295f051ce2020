package builtin

import (
	"github.com/jobforge/jobforge/jobs"

	"context"
	"fmt"
	"math"
	"time"
)

// PrimesPayload asks for the number of primes below Limit.
type PrimesPayload struct {
	Limit int64 `json:"limit" jsonschema:"required,minimum=2,maximum=2000000000,description=Count primes strictly below this number"`
}

// Validate implements the payload rules.
func (p *PrimesPayload) Validate() error {
	if p.Limit < 2 || p.Limit > 2_000_000_000 {
		return jobs.Invalid("limit", "must be between 2 and 2000000000, got %d", p.Limit)
	}
	return nil
}

// PrimesResult is the count of primes below Limit and the largest of them.
type PrimesResult struct {
	Limit   int64 `json:"limit"`
	Count   int64 `json:"count"`
	Largest int64 `json:"largest"`
}

// Primes is the CPU-bound built-in type: a segmented sieve of Eratosthenes
// that keeps one core busy for a time proportional to the limit (about 1 s
// per 10^9 on a modern core) in constant memory.
var Primes = jobs.Define(jobs.Spec[PrimesPayload, PrimesResult]{
	Name:        "primes",
	Description: "Counts the primes below `limit` with a segmented sieve (CPU-bound; runs on the cpu queue).",
	Queue:       jobs.QueueCPU,
	Timeout:     10 * time.Minute,
	MaxAttempts: 3,
	Example:     PrimesPayload{Limit: 1_000_000},
	Handle: func(ctx context.Context, job *jobs.Job, p PrimesPayload) (PrimesResult, error) {
		// Each report is a Redis round trip during which the core idles:
		// report the first step, then at most every progressEvery.
		var last time.Time
		count, largest, err := CountPrimes(ctx, p.Limit, func(done int64) {
			if now := time.Now(); last.IsZero() || now.Sub(last) >= progressEvery {
				last = now
				_ = job.Progress(ctx, int(done*100/p.Limit), fmt.Sprintf("sieved %d of %d", done, p.Limit))
			}
		})
		if err != nil {
			return PrimesResult{}, err
		}
		// The last segment is never reported above (nor those the spacing
		// skipped): end on the whole range, so the final message agrees
		// with the 100 % the job finishes at.
		_ = job.Progress(ctx, 100, fmt.Sprintf("sieved %d of %d", p.Limit, p.Limit))
		return PrimesResult{Limit: p.Limit, Count: count, Largest: largest}, nil
	},
})

// progressEvery spaces the primes handler's progress reports.
const progressEvery = 100 * time.Millisecond

// segmentSize is the sieve window: 256 KiB of flags stays in L2 cache.
const segmentSize = 1 << 18

// CountPrimes returns how many primes are below limit and the largest one.
// It checks ctx and calls progress (when non-nil) roughly every 5% of the
// range; it returns ctx.Err() if cancelled.
func CountPrimes(ctx context.Context, limit int64, progress func(done int64)) (count, largest int64, err error) {
	if limit <= 2 {
		return 0, 0, nil
	}
	root := int64(math.Sqrt(float64(limit))) + 1
	base := make([]bool, root+1) // true = composite
	var small []int64
	for i := int64(2); i <= root; i++ {
		if base[i] {
			continue
		}
		small = append(small, i)
		for j := i * i; j <= root; j += i {
			base[j] = true
		}
	}
	seg := make([]bool, segmentSize)
	step := max(limit/20, segmentSize)
	nextReport := step
	for low := int64(2); low < limit; low += segmentSize {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		high := min(low+segmentSize, limit) // exclusive
		clear(seg)
		for _, p := range small {
			if p*p >= high {
				break
			}
			start := max(p*p, (low+p-1)/p*p)
			for j := start; j < high; j += p {
				seg[j-low] = true
			}
		}
		for i := low; i < high; i++ {
			if !seg[i-low] {
				count++
				largest = i
			}
		}
		if progress != nil && high >= nextReport && high < limit {
			progress(high)
			nextReport += step
		}
	}
	return count, largest, nil
}
