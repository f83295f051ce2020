package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
)

// probe is one latency probe job: when it was submitted, and its name.
type probe struct {
	name   string
	submit time.Time
}

// probeLatencies submits n no-op jobs one at a time with random pauses
// (so submissions fall at random points of the workers' poll cycle), waits
// until all have finished, and returns submit→start and submit→SUCCEEDED.
func (s *suite) probeLatencies(ctx context.Context, n int) (start, done []time.Duration, err error) {
	probes := make([]probe, 0, n)
	for range n {
		gap := s.latencyGap/2 + rand.N(s.latencyGap)
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(gap):
		}
		t0 := time.Now()
		j, err := s.client.CreateJob(ctx, &jobforgev1.CreateJobRequest{Job: noopJob()})
		if err != nil {
			return nil, nil, err
		}
		probes = append(probes, probe{name: j.GetName(), submit: t0})
	}
	for _, p := range probes {
		j, err := s.waitFinished(ctx, p.name, 30*time.Second)
		if err != nil {
			return nil, nil, err
		}
		if j.GetState() != jobforgev1.Job_SUCCEEDED {
			return nil, nil, fmt.Errorf("probe %s ended %s", p.name, j.GetState())
		}
		start = append(start, j.GetStartTime().AsTime().Sub(p.submit))
		done = append(done, j.GetEndTime().AsTime().Sub(p.submit))
	}
	slices.Sort(start)
	slices.Sort(done)
	return start, done, nil
}

func (s *suite) waitFinished(ctx context.Context, name string, timeout time.Duration) (*jobforgev1.Job, error) {
	deadline := time.Now().Add(timeout)
	for {
		j, err := s.client.GetJob(ctx, &jobforgev1.GetJobRequest{Name: name})
		if err != nil {
			return nil, err
		}
		switch j.GetState() {
		case jobforgev1.Job_SUCCEEDED, jobforgev1.Job_FAILED, jobforgev1.Job_CANCELLED:
			return j, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s still %s after %s", name, j.GetState(), timeout)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func percentiles(sorted []time.Duration) []float64 {
	out := make([]float64, 4)
	for i, d := range []time.Duration{pct(sorted, 50), pct(sorted, 90), pct(sorted, 99), sorted[len(sorted)-1]} {
		out[i] = float64(d) / float64(time.Millisecond)
	}
	return out
}

func latencyText(sorted []time.Duration) string {
	return fmt.Sprintf("%s / %s / %s / %s ms", ms(pct(sorted, 50)), ms(pct(sorted, 90)), ms(pct(sorted, 99)), ms(sorted[len(sorted)-1]))
}

// background submits no-op jobs open-loop at perSec until ctx is done and
// returns how many it submitted.
func (s *suite) background(ctx context.Context, perSec float64) (submitted int, errs int) {
	due := make(chan struct{}, 1024)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range due {
				_, err := s.client.CreateJob(ctx, &jobforgev1.CreateJobRequest{Job: noopJob()})
				mu.Lock()
				if err != nil && ctx.Err() == nil {
					errs++
				} else if err == nil {
					submitted++
				}
				mu.Unlock()
			}
		}()
	}
	start := time.Now()
	interval := time.Duration(float64(time.Second) / perSec)
	for i := 1; ; i++ {
		select {
		case <-ctx.Done():
			close(due)
			wg.Wait()
			return submitted, errs
		case <-time.After(time.Until(start.Add(time.Duration(i) * interval))):
		}
		select {
		case due <- struct{}{}:
		default: // senders cannot keep up; the backlog is the load's own
		}
	}
}

// capacity estimates how many no-op jobs per second the system sustains
// end to end on this machine: creating (B1 gRPC at c=64) and running (B5,
// one worker) share the same cores, so their costs add up.
func (s *suite) capacity(ctx context.Context) (float64, error) {
	create, work := s.res.grpcCreate64, s.res.workerRate
	if create == 0 {
		t, err := func() (tput, error) {
			d, w := s.duration, s.warmup
			s.duration, s.warmup = time.Second, 200*time.Millisecond
			defer func() { s.duration, s.warmup = d, w }()
			if err := s.flush(ctx); err != nil {
				return tput{}, err
			}
			return s.grpcCreate(ctx, 64)
		}()
		if err != nil {
			return 0, err
		}
		create = t.perSec()
	}
	if work == 0 {
		r, err := s.drainRun(ctx, 1, false, 5000)
		if err != nil {
			return 0, err
		}
		work = r.rate
	}
	return 1 / (1/create + 1/work), nil
}

// benchLatency is B4.
func (s *suite) benchLatency(ctx context.Context) error {
	if err := s.ensureAPI(ctx); err != nil {
		return err
	}
	loadRate := s.loadRate
	if loadRate == 0 {
		c, err := s.capacity(ctx)
		if err != nil {
			return fmt.Errorf("estimate capacity: %w", err)
		}
		loadRate = s.loadFraction * c
	}
	if err := s.flush(ctx); err != nil {
		return err
	}
	ws, err := s.startWorkers(ctx, 1)
	defer stopAll(ws)
	if err != nil {
		return err
	}
	time.Sleep(500 * time.Millisecond) // let the worker settle into idle polling

	start, done, err := s.probeLatencies(ctx, s.latencyJobs)
	if err != nil {
		return fmt.Errorf("idle: %w", err)
	}
	s.res.add(row{
		Bench: "B4", What: "idle: submit→handler start, p50 / p90 / p99 / max", Value: float64(pct(start, 50)) / 1e6, Unit: "ms",
		Display: latencyText(start), Target: "p50 ≤ 5 ms, p99 ≤ 15 ms",
		Pass:  check(pct(start, 50) <= 5*time.Millisecond && pct(start, 99) <= 15*time.Millisecond),
		Extra: []string{fmt.Sprintf("%d probe jobs submitted over gRPC one at a time, %s apart on average", len(start), s.latencyGap)},
	})
	s.res.add(row{Bench: "B4", What: "idle: submit→SUCCEEDED, p50 / p90 / p99 / max", Value: float64(pct(done, 50)) / 1e6, Unit: "ms", Display: latencyText(done)})
	s.res.Latency = append(s.res.Latency, latencySeries{"idle: start", percentiles(start)}, latencySeries{"idle: SUCCEEDED", percentiles(done)})
	s.logf("idle: start %s, succeeded %s", latencyText(start), latencyText(done))

	lctx, stopLoad := context.WithCancel(ctx)
	var submitted, loadErrs int
	var wg sync.WaitGroup
	wg.Add(1)
	loadStart := time.Now()
	go func() { defer wg.Done(); submitted, loadErrs = s.background(lctx, loadRate) }()
	time.Sleep(time.Second) // reach steady state
	start, done, err = s.probeLatencies(ctx, s.latencyJobs)
	stopLoad()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("under load: %w", err)
	}
	achieved := float64(submitted) / time.Since(loadStart).Seconds()
	what := fmt.Sprintf("%.0f%% load (%.0f jobs/s): ", s.loadFraction*100, loadRate)
	if s.loadRate > 0 {
		what = fmt.Sprintf("load of %.0f jobs/s: ", loadRate)
	}
	note := fmt.Sprintf("background load: %s submitted (%d errors), target %s; capacity estimated as 1/(1/create + 1/worker) from B1 c=64 and B5 ×1",
		rate(achieved), loadErrs, rate(loadRate))
	s.res.add(row{Bench: "B4", What: what + "submit→handler start", Value: float64(pct(start, 50)) / 1e6, Unit: "ms", Display: latencyText(start), Extra: []string{note}})
	s.res.add(row{Bench: "B4", What: what + "submit→SUCCEEDED", Value: float64(pct(done, 50)) / 1e6, Unit: "ms", Display: latencyText(done)})
	s.res.Latency = append(s.res.Latency, latencySeries{"load: start", percentiles(start)}, latencySeries{"load: SUCCEEDED", percentiles(done)})
	s.logf("load %s: start %s, succeeded %s", rate(achieved), latencyText(start), latencyText(done))

	late, err := s.scheduledLateness(ctx)
	if err != nil {
		return fmt.Errorf("scheduled: %w", err)
	}
	s.res.add(row{
		Bench: "B4", What: "scheduled jobs: start − schedule time, p50 / p90 / p99 / max", Value: float64(late[len(late)-1]) / 1e6, Unit: "ms",
		Display: latencyText(late), Target: "≤ 1 s late", Pass: check(late[len(late)-1] <= time.Second),
		Extra: []string{fmt.Sprintf("%d jobs scheduled 1-2 s ahead at random sub-second offsets", len(late))},
	})
	s.logf("scheduled lateness %s", latencyText(late))
	return nil
}

// scheduledLateness schedules jobs 1-2 s ahead at random sub-second
// offsets and returns how late each started.
func (s *suite) scheduledLateness(ctx context.Context) ([]time.Duration, error) {
	type sched struct {
		name string
		at   time.Time
	}
	var jobs []sched
	for range s.schedJobs {
		at := time.Now().Add(time.Second + rand.N(time.Second))
		j := noopJob()
		j.ScheduleTime = timestamppb.New(at)
		created, err := s.client.CreateJob(ctx, &jobforgev1.CreateJobRequest{Job: j})
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, sched{created.GetName(), created.GetScheduleTime().AsTime()})
	}
	var late []time.Duration
	for _, j := range jobs {
		got, err := s.waitFinished(ctx, j.name, 30*time.Second)
		if err != nil {
			return nil, err
		}
		late = append(late, got.GetStartTime().AsTime().Sub(j.at))
	}
	slices.Sort(late)
	return late, nil
}
