package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
)

// noopJob is the job every create benchmark submits: a simulate job with an
// empty payload, which succeeds at once.
func noopJob() *jobforgev1.Job {
	return &jobforgev1.Job{Type: "simulate", Payload: &structpb.Struct{}}
}

const noopJSON = `{"type":"simulate","payload":{}}`

// tput is the outcome of a closed-loop throughput run.
type tput struct {
	ops     int64           // operations completed inside the window
	items   int64           // jobs created inside the window
	elapsed time.Duration   // window length
	lat     []time.Duration // latency of each operation inside the window
	errs    int64
	firstEr error
}

func (t tput) perSec() float64 { return float64(t.items) / t.elapsed.Seconds() }

// closedLoop runs op from c goroutines back to back for warmup+d and counts
// the operations that complete inside the last d. op returns how many jobs
// it created.
func closedLoop(ctx context.Context, c int, warmup, d time.Duration, op func(context.Context) (int, error)) tput {
	start := time.Now()
	from, to := start.Add(warmup), start.Add(warmup+d)
	ctx, cancel := context.WithDeadline(ctx, to)
	defer cancel()
	var (
		mu  sync.Mutex
		res = tput{elapsed: d}
		wg  sync.WaitGroup
	)
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			var ops, items, errs int64
			var firstErr error
			for ctx.Err() == nil && time.Now().Before(to) {
				t0 := time.Now()
				n, err := op(ctx)
				t1 := time.Now()
				if err != nil {
					if ctx.Err() != nil || !t1.Before(to) {
						break
					}
					errs++
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				if t1.After(from) && t1.Before(to) {
					ops++
					items += int64(n)
					lat = append(lat, t1.Sub(t0))
				}
			}
			mu.Lock()
			res.ops += ops
			res.items += items
			res.errs += errs
			res.lat = append(res.lat, lat...)
			if res.firstEr == nil {
				res.firstEr = firstErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(res.lat)
	return res
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// newRawTask is the raw asynq equivalent of noopJob, with rawOpts: what a
// program using asynq directly would enqueue.
func newRawTask() *asynq.Task { return asynq.NewTask("simulate", []byte("{}")) }

func rawOpts(extra ...asynq.Option) []asynq.Option {
	return append([]asynq.Option{asynq.MaxRetry(4), asynq.Timeout(time.Hour)}, extra...)
}

// rawClient is a plain asynq client on its own go-redis client, configured
// as the api's (default pool size).
func (s *suite) rawClient() (*asynq.Client, func()) {
	rdb := redis.NewClient(&redis.Options{Addr: s.addr})
	c := asynq.NewClientFromRedisClient(rdb)
	return c, func() { _ = c.Close(); _ = rdb.Close() }
}

// rawEnqueue measures raw asynq.Client.Enqueue of the same no-op task at
// concurrency c: what a program using asynq directly gets.
func (s *suite) rawEnqueue(ctx context.Context, c int) (tput, error) {
	client, done := s.rawClient()
	defer done()
	t := closedLoop(ctx, c, s.warmup, s.duration, func(ctx context.Context) (int, error) {
		_, err := client.EnqueueContext(ctx, newRawTask(), rawOpts()...)
		return 1, err
	})
	return t, t.err()
}

func (t tput) err() error {
	if t.ops == 0 {
		return fmt.Errorf("no operation succeeded (%d errors): %w", t.errs, t.firstEr)
	}
	if t.errs > 0 {
		return fmt.Errorf("%d operations failed: %w", t.errs, t.firstEr)
	}
	return nil
}

func (s *suite) grpcCreate(ctx context.Context, c int) (tput, error) {
	t := closedLoop(ctx, c, s.warmup, s.duration, func(ctx context.Context) (int, error) {
		_, err := s.client.CreateJob(ctx, &jobforgev1.CreateJobRequest{Job: noopJob()})
		return 1, err
	})
	return t, t.err()
}

func (s *suite) restCreate(ctx context.Context, c int) (tput, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: c, MaxConnsPerHost: c, DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	url := s.httpURL + "/v1/jobs"
	body := []byte(noopJSON)
	t := closedLoop(ctx, c, s.warmup, s.duration, func(ctx context.Context) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+s.token)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0, err
		}
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("POST /v1/jobs: %s: %s", resp.Status, b)
		}
		return 1, nil
	})
	return t, t.err()
}

// cpuUse is the CPU time the api, redis-server and this program used over
// benchmark turns, warm-ups included.
type cpuUse struct{ api, redis, self time.Duration }

// cpuNow reads the CPU counters; cpuSince(then) is the use since.
func (s *suite) cpuNow() cpuUse {
	u := cpuUse{self: processCPU()}
	if s.api != nil {
		u.api, _ = s.api.cpuTime()
	}
	u.redis, _ = s.redis.cpuTime()
	return u
}

func (s *suite) cpuSince(then cpuUse) cpuUse {
	now := s.cpuNow()
	return cpuUse{api: now.api - then.api, redis: now.redis - then.redis, self: now.self - then.self}
}

// benchTurns is how many turns each side of a throughput comparison gets.
const benchTurns = 3

// side is one side of a throughput comparison: its turns and their CPU
// summed.
type side struct {
	t   tput
	cpu cpuUse
}

func (a *side) add(t tput, cpu cpuUse) {
	a.t.ops, a.t.items, a.t.elapsed, a.t.errs = a.t.ops+t.ops, a.t.items+t.items, a.t.elapsed+t.elapsed, a.t.errs+t.errs
	a.t.lat = append(a.t.lat, t.lat...)
	if a.t.firstEr == nil {
		a.t.firstEr = t.firstEr
	}
	a.cpu.api, a.cpu.redis, a.cpu.self = a.cpu.api+cpu.api, a.cpu.redis+cpu.redis, a.cpu.self+cpu.self
}

// perOp spreads the side's CPU over its items, which were counted in
// measured windows of s.duration in total, scaled to the whole time with
// the benchTurns warm-ups, so figures per job are a little high.
func (a side) perOp(s *suite) string {
	if a.t.items == 0 {
		return "-"
	}
	scale := float64(s.duration) / float64(s.duration+benchTurns*s.warmup) / float64(a.t.items)
	per := func(c time.Duration) string { return us(time.Duration(float64(c) * scale)) }
	return fmt.Sprintf("api %s, redis %s, client %s", per(a.cpu.api), per(a.cpu.redis), per(a.cpu.self))
}

// alternate measures raw and jf (each a closed-loop run of s.duration) in
// benchTurns turns each, raw then jf, each turn a benchTurns-th of
// s.duration after its warm-up and on a flushed Redis. The machine's speed
// drifts over seconds (other tenants, CPU frequency): turns close in time
// see the same conditions, so the ratio of the sums holds still where one
// long run of each did not. The CPU of each turn (flush excluded) is
// summed per side. profile, when set, is called before jf's first turn
// and its result after it.
func (s *suite) alternate(ctx context.Context, raw, jf func(context.Context) (tput, error), profile func() func()) (r, j side, err error) {
	d := s.duration
	s.duration = d / benchTurns
	defer func() { s.duration = d }()
	sides, runs := [2]*side{&r, &j}, [2]func(context.Context) (tput, error){raw, jf}
	for turn := range benchTurns {
		for i, run := range runs {
			if err := s.flush(ctx); err != nil {
				return r, j, err
			}
			wait := func() {}
			if profile != nil && turn == 0 && i == 1 {
				wait = profile()
			}
			then := s.cpuNow()
			t, err := run(ctx)
			sides[i].add(t, s.cpuSince(then))
			wait()
			if err != nil {
				return r, j, err
			}
		}
	}
	for _, x := range sides {
		slices.Sort(x.t.lat)
	}
	return r, j, nil
}

func latencyExtra(name string, t tput) string {
	return fmt.Sprintf("%s request latency p50 %s ms, p99 %s ms (%d requests)", name, ms(pct(t.lat, 50)), ms(pct(t.lat, 99)), t.ops)
}

// benchCreate runs jobforge's create over one transport next to raw
// enqueue at each concurrency level, alternating so both see the same
// machine conditions.
func (s *suite) benchCreate(ctx context.Context, bench, transport string, create func(context.Context, int) (tput, error), target float64) error {
	if err := s.ensureAPI(ctx); err != nil {
		return err
	}
	for _, c := range s.concurrency {
		rs, js, err := s.alternate(ctx,
			func(ctx context.Context) (tput, error) { return s.rawEnqueue(ctx, c) },
			func(ctx context.Context) (tput, error) { return create(ctx, c) },
			func() func() {
				return s.profile(ctx, s.api, fmt.Sprintf("api %s c=%d", transport, c), s.warmup+s.duration)
			})
		if err != nil {
			return fmt.Errorf("%s create c=%d: %w", transport, c, err)
		}
		raw, jf := rs.t, js.t
		rawCPU, jfCPU := rs.perOp(s), js.perOp(s)
		x := row{
			Bench: bench, What: fmt.Sprintf("create over %s, c=%d", transport, c),
			Value: jf.perSec(), Unit: "jobs/s", Display: rate(jf.perSec()),
			Baseline: raw.perSec(), BaseDisp: rate(raw.perSec()),
			Extra: []string{latencyExtra("jobforge", jf), latencyExtra("raw", raw), "CPU per job: jobforge " + jfCPU + "; raw " + rawCPU},
		}
		if c == slices.Max(s.concurrency) && c >= 64 {
			x.Target = fmt.Sprintf("≥ %.2g×", target)
			x.Pass = check(jf.perSec() >= target*raw.perSec())
		}
		s.res.add(x)
		s.res.Throughput = append(s.res.Throughput, barGroup{Label: fmt.Sprintf("%s c=%d", transport, c), Jobforge: jf.perSec(), Raw: raw.perSec()})
		s.logf("%s c=%d: jobforge %s, raw %s (%.2f×); CPU/job jobforge %s; raw %s", transport, c, rate(jf.perSec()), rate(raw.perSec()), jf.perSec()/raw.perSec(), jfCPU, rawCPU)
		if transport == "gRPC" && c == 64 {
			s.res.grpcCreate64 = jf.perSec()
		}
	}
	return nil
}

// benchCreateGRPC is B1; the api is started fresh so that its peak RSS
// (B7) covers B1 only.
func (s *suite) benchCreateGRPC(ctx context.Context) error {
	if err := s.startAPI(ctx); err != nil {
		return err
	}
	if err := s.benchCreate(ctx, "B1", "gRPC", s.grpcCreate, 0.5); err != nil {
		return err
	}
	m, err := s.api.memory()
	if err != nil {
		return err
	}
	s.res.apiRSS = m
	return nil
}

// benchCreateREST is B2.
func (s *suite) benchCreateREST(ctx context.Context) error {
	return s.benchCreate(ctx, "B2", "REST", s.restCreate, 0.35)
}

// benchBatchCreate is B3: BatchCreateJobs of n jobs per request against raw
// single enqueue at the highest concurrency.
func (s *suite) benchBatchCreate(ctx context.Context) error {
	if err := s.ensureAPI(ctx); err != nil {
		return err
	}
	c := slices.Max(s.concurrency)
	if _, err := s.client.BatchCreateJobs(ctx, &jobforgev1.BatchCreateJobsRequest{
		Requests: []*jobforgev1.CreateJobRequest{{Job: noopJob()}},
	}); status.Code(err) == codes.Unimplemented {
		s.res.add(row{Bench: "B3", What: "batch create", Display: "not available", Target: "≥ 1.5× (batch of 100)",
			Extra: []string{"the api does not implement BatchCreateJobs (POST /v1/jobs:batchCreate)"}})
		return nil
	} else if err != nil {
		return fmt.Errorf("BatchCreateJobs: %w", err)
	}
	for _, n := range s.batchSizes {
		req := &jobforgev1.BatchCreateJobsRequest{}
		for range n {
			req.Requests = append(req.Requests, &jobforgev1.CreateJobRequest{Job: noopJob()})
		}
		var itemErrs atomic.Int64
		batch := func(ctx context.Context) (tput, error) {
			t := closedLoop(ctx, s.batchConc, s.warmup, s.duration, func(ctx context.Context) (int, error) {
				resp, err := s.client.BatchCreateJobs(ctx, req)
				if err != nil {
					return 0, err
				}
				created := 0
				for _, r := range resp.GetResults() {
					if r.GetJob() != nil {
						created++
					} else {
						itemErrs.Add(1)
					}
				}
				if created != n {
					return created, errors.New("some batch items failed")
				}
				return created, nil
			})
			return t, t.err()
		}
		rs, js, err := s.alternate(ctx,
			func(ctx context.Context) (tput, error) { return s.rawEnqueue(ctx, c) }, batch,
			func() func() { return s.profile(ctx, s.api, fmt.Sprintf("api batch %d", n), s.warmup+s.duration) })
		if err != nil {
			return fmt.Errorf("batch of %d: %w (%d item errors)", n, err, itemErrs.Load())
		}
		raw, jf := rs.t, js.t
		rawCPU, jfCPU := rs.perOp(s), js.perOp(s)
		x := row{
			Bench: "B3", What: fmt.Sprintf("batch create of %d over gRPC, %d concurrent vs single enqueue c=%d", n, s.batchConc, c),
			Value: jf.perSec(), Unit: "jobs/s", Display: rate(jf.perSec()),
			Baseline: raw.perSec(), BaseDisp: rate(raw.perSec()),
			Extra: []string{latencyExtra("batch", jf), "CPU per job: jobforge " + jfCPU + "; raw " + rawCPU},
		}
		if n == 100 {
			x.Target = "≥ 1.5×"
			x.Pass = check(jf.perSec() >= 1.5*raw.perSec())
		}
		s.res.add(x)
		s.res.Throughput = append(s.res.Throughput, barGroup{Label: fmt.Sprintf("batch %d", n), Jobforge: jf.perSec(), Raw: raw.perSec()})
		s.logf("batch %d: jobforge %s, raw single %s (%.2f×); CPU per job: jobforge %s; raw %s", n, rate(jf.perSec()), rate(raw.perSec()), jf.perSec()/raw.perSec(), jfCPU, rawCPU)
	}
	return nil
}
