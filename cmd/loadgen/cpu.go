package main

import (
	"context"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/jobs"
	"github.com/jobforge/jobforge/jobs/builtin"
	"github.com/jobforge/jobforge/jobs/jobstest"
)

// processCPU is this process's user+system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// primesLimitFor picks the primes payload limit whose sieve takes about d
// of CPU time here (the sieve is close to linear in the limit).
func primesLimitFor(d time.Duration) int64 {
	const probe = 10_000_000
	ctx := context.Background()
	_, _, _ = builtin.CountPrimes(ctx, probe, nil) // warm caches
	c0 := processCPU()
	const reps = 5
	for range reps {
		_, _, _ = builtin.CountPrimes(ctx, probe, nil)
	}
	per := (processCPU() - c0) / reps
	return max(int64(float64(probe)*float64(d)/float64(per)), 1000)
}

// handlerCPU runs the Go benchmark of the primes handler alone
// (jobstest.Benchmark, as `go test -bench PrimesHandler ./jobs` does) and
// returns the CPU time per job it used, and the wall time per job.
func handlerCPU(limit int64) (cpu, wall time.Duration) {
	payload := fmt.Sprintf(`{"limit":%d}`, limit)
	var iters int
	c0 := processCPU()
	res := testing.Benchmark(func(b *testing.B) {
		jobstest.Benchmark(b, builtin.Primes, payload)
		iters += b.N // b.N is the loop count once b.Loop is done
	})
	return (processCPU() - c0) / time.Duration(iters), time.Duration(res.NsPerOp())
}

// benchCPU is B6: CPU-bound jobs drained by one worker process (its cpu
// pool has one slot per core) against the ideal, cores ÷ per-job CPU time.
func (s *suite) benchCPU(ctx context.Context) error {
	if err := s.ensureAPI(ctx); err != nil {
		return err
	}
	cores := runtime.NumCPU()
	for _, target := range s.cpuJobs {
		limit := primesLimitFor(target)
		cpu, wall := handlerCPU(limit)
		ideal := float64(cores) / cpu.Seconds()
		n := max(int(ideal*s.cpuWork.Seconds()), 2*cores)

		if err := s.flush(ctx); err != nil {
			return err
		}
		if err := s.inspector().PauseQueue(jobs.QueueCPU); err != nil {
			return err
		}
		ws, err := s.startWorkers(ctx, 1)
		if err != nil {
			stopAll(ws)
			return err
		}
		payload, _ := structpb.NewStruct(map[string]any{"limit": float64(limit)})
		err = s.fillJobs(ctx, n, func() *jobforgev1.Job { return &jobforgev1.Job{Type: "primes", Payload: payload} })
		var d, used time.Duration
		if err == nil {
			c0, _ := ws[0].cpuTime()
			wait := s.profile(ctx, ws[0], fmt.Sprintf("worker cpu %s", target), 2*time.Second)
			d, err = s.drain(ctx, jobs.QueueCPU, n)
			wait()
			c1, _ := ws[0].cpuTime()
			used = c1 - c0
		}
		stopAll(ws)
		if err != nil {
			return err
		}
		if processed, failed := s.counters(ctx, jobs.QueueCPU); processed != int64(n) || failed != 0 {
			return fmt.Errorf("%d primes jobs processed and %d failed, want %d and 0", processed, failed, n)
		}
		got := float64(n) / d.Seconds()
		x := row{
			Bench: "B6", What: fmt.Sprintf("CPU-bound jobs of %s CPU (primes limit %d), %d slots", ms(cpu)+" ms", limit, cores),
			Value: got, Unit: "jobs/s", Display: rate(got), Baseline: ideal, BaseDisp: "ideal " + rate(ideal),
			Extra: []string{fmt.Sprintf("%d jobs; handler alone: %s ms CPU, %s ms wall per job (Go benchmark); the worker process got %.2f of the %d cores (the rest went to other processes on the machine)",
				n, ms(cpu), ms(wall), used.Seconds()/d.Seconds(), cores)},
		}
		if cpu >= 10*time.Millisecond*9/10 {
			x.Target = "≥ 0.9× ideal"
			x.Pass = check(got >= 0.9*ideal)
		}
		s.res.add(x)
		s.logf("cpu jobs of %s ms: %s vs ideal %s (%.2f); worker used %.2f cores, %.0f%% of it in the handler",
			ms(cpu), rate(got), rate(ideal), got/ideal, used.Seconds()/d.Seconds(), 100*float64(n)*cpu.Seconds()/used.Seconds())
	}
	return nil
}
