package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
)

// The raw asynq server has the concurrency and queues of a jobforge worker's
// io pool with default flags, so that the difference is jobforge's own
// work. It polls every 10 ms: plain asynq's way to a pickup latency of a
// few milliseconds (jobforge's workers wait for a wake-up instead).
const (
	rawConcurrency = 32
	rawQueues      = "critical=6,default=3,low=1"
	rawPoll        = 10 * time.Millisecond
	rawDelayed     = 500 * time.Millisecond
	retention      = 24 * time.Hour // jobforge's default -retention
)

// runRawWorker is `loadgen raw-worker`: a plain asynq.Server whose handler
// writes the same result a no-op jobforge job stores, with the same
// retention, and serves /readyz on -admin-addr.
func runRawWorker(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadgen raw-worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("redis-addr", "", "Redis host:port")
	admin := fs.String("admin-addr", "127.0.0.1:0", "readiness endpoint address")
	concurrency := fs.Int("concurrency", rawConcurrency, "handler slots")
	queues := fs.String("queues", rawQueues, "queues with weights")
	poll := fs.Duration("poll-interval", rawPoll, "asynq TaskCheckInterval")
	if err := fs.Parse(args); err != nil {
		return err
	}
	qs := map[string]int{}
	for part := range strings.SplitSeq(*queues, ",") {
		name, w, _ := strings.Cut(part, "=")
		n, err := strconv.Atoi(w)
		if err != nil {
			return fmt.Errorf("-queues: %q", part)
		}
		qs[name] = n
	}
	rdb := redis.NewClient(&redis.Options{Addr: *addr})
	defer rdb.Close()
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:              *concurrency,
		Queues:                   qs,
		TaskCheckInterval:        *poll,
		DelayedTaskCheckInterval: rawDelayed,
		ShutdownTimeout:          25 * time.Second,
		LogLevel:                 asynq.WarnLevel,
	})
	result := []byte(`{"attempt":1}`)
	if err := srv.Start(asynq.HandlerFunc(func(_ context.Context, t *asynq.Task) error {
		_, err := t.ResultWriter().Write(result)
		return err
	})); err != nil {
		return err
	}
	defer srv.Shutdown()
	lis, err := net.Listen("tcp", *admin)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }), ReadHeaderTimeout: time.Second}
	go func() { _ = hs.Serve(lis) }()
	<-ctx.Done()
	return hs.Close()
}

func (s *suite) startRawWorkers(ctx context.Context, n int) ([]*proc, error) {
	var ps []*proc
	for i := range n {
		addr, err := freeAddr()
		if err != nil {
			return ps, err
		}
		p, err := startProc(s.logDir, fmt.Sprintf("raw-worker-%d", i+1), selfExe(), "raw-worker", "-redis-addr", s.addr, "-admin-addr", addr)
		if err != nil {
			return ps, err
		}
		ps = append(ps, p)
		if err := p.waitReady(ctx, httpReady("http://"+addr+"/readyz")); err != nil {
			return ps, err
		}
	}
	return ps, nil
}

func (s *suite) inspector() *asynq.Inspector { return asynq.NewInspectorFromRedisClient(s.rdb) }

// fillJobs creates n no-op jobs (type typ, payload) through the api's batch
// endpoint, 1000 per request.
func (s *suite) fillJobs(ctx context.Context, n int, job func() *jobforgev1.Job) error {
	const per = 1000
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for done := 0; done < n; done += per {
		k := min(per, n-done)
		g.Go(func() error {
			req := &jobforgev1.BatchCreateJobsRequest{Requests: make([]*jobforgev1.CreateJobRequest, k)}
			for i := range req.Requests {
				req.Requests[i] = &jobforgev1.CreateJobRequest{Job: job()}
			}
			resp, err := s.client.BatchCreateJobs(gctx, req)
			if err != nil {
				return fmt.Errorf("fill: %w", err)
			}
			for _, r := range resp.GetResults() {
				if r.GetJob() == nil {
					return fmt.Errorf("fill: %s", r.GetError().GetMessage())
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// fillRaw enqueues n raw no-op tasks with retention.
func (s *suite) fillRaw(ctx context.Context, n int) error {
	client, done := s.rawClient()
	defer done()
	var next sync.Mutex
	left := n
	g, gctx := errgroup.WithContext(ctx)
	for range 32 {
		g.Go(func() error {
			for {
				next.Lock()
				if left == 0 {
					next.Unlock()
					return nil
				}
				left--
				next.Unlock()
				if _, err := client.EnqueueContext(gctx, newRawTask(), rawOpts(asynq.Retention(retention))...); err != nil {
					return err
				}
			}
		})
	}
	return g.Wait()
}

// drain unpauses queue q and returns how long it took until no task of it
// is pending or active any more.
func (s *suite) drain(ctx context.Context, q string, expect int) (time.Duration, error) {
	pending, active := "asynq:{"+q+"}:pending", "asynq:{"+q+"}:active"
	if n, err := s.rdb.LLen(ctx, pending).Result(); err != nil || int(n) != expect {
		return 0, fmt.Errorf("queue %s holds %d tasks before the run, want %d (%v)", q, n, expect, err)
	}
	start := time.Now()
	if err := s.inspector().UnpauseQueue(q); err != nil {
		return 0, err
	}
	deadline := start.Add(10 * time.Minute)
	for {
		pipe := s.rdb.Pipeline()
		p, a := pipe.LLen(ctx, pending), pipe.LLen(ctx, active)
		if _, err := pipe.Exec(ctx); err != nil {
			return 0, err
		}
		if p.Val() == 0 && a.Val() == 0 {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("queue %s not drained after 10 minutes", q)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// counters returns asynq's processed and failed totals of queue q.
func (s *suite) counters(ctx context.Context, q string) (processed, failed int64) {
	processed, _ = s.rdb.Get(ctx, "asynq:{"+q+"}:processed").Int64()
	failed, _ = s.rdb.Get(ctx, "asynq:{"+q+"}:failed").Int64()
	return processed, failed
}

type drainRun struct {
	rate     float64
	rss      []memUse
	cpuPerJ  time.Duration   // worker processes' CPU per job
	cpuEach  []time.Duration // the same, process by process
	redisPer time.Duration   // redis-server CPU per job
}

// drainRun fills the paused default queue with n no-op jobs, either through
// jobforge (workers = jobforge worker processes) or raw, then measures how
// fast the started processes drain it.
func (s *suite) drainRun(ctx context.Context, procs int, raw bool, n int) (drainRun, error) {
	const q = "default"
	var out drainRun
	if err := s.flush(ctx); err != nil {
		return out, err
	}
	if err := s.inspector().PauseQueue(q); err != nil {
		return out, err
	}
	var ps []*proc
	var err error
	if raw {
		ps, err = s.startRawWorkers(ctx, procs)
	} else {
		ps, err = s.startWorkers(ctx, procs)
	}
	defer stopAll(ps)
	if err != nil {
		return out, err
	}
	if raw {
		err = s.fillRaw(ctx, n)
	} else {
		err = s.fillJobs(ctx, n, noopJob)
	}
	if err != nil {
		return out, err
	}
	return s.measureDrain(ctx, q, n, ps, fmt.Sprintf("%dprocs", procs))
}

// measureDrain resumes the paused queue q, which holds n jobs, and measures
// how fast the processes ps drain it: jobs/s, their CPU and Redis's per job,
// and their peak RSS. label names their CPU profiles (-pprof-dir).
func (s *suite) measureDrain(ctx context.Context, q string, n int, ps []*proc, label string) (drainRun, error) {
	var out drainRun
	cpu0, err := cpuOf(append([]*proc{s.redis}, ps...))
	if err != nil {
		return out, err
	}
	var waits []func()
	for _, p := range ps {
		waits = append(waits, s.profile(ctx, p, p.name+" "+label, time.Second))
	}
	d, err := s.drain(ctx, q, n)
	for _, w := range waits {
		w()
	}
	if err != nil {
		return out, err
	}
	cpu1, err := cpuOf(append([]*proc{s.redis}, ps...))
	if err != nil {
		return out, err
	}
	processed, failed := s.counters(ctx, q)
	if processed != int64(n) || failed != 0 {
		return out, fmt.Errorf("%d tasks processed and %d failed, want %d and 0", processed, failed, n)
	}
	out.rate = float64(n) / d.Seconds()
	out.redisPer = (cpu1[0] - cpu0[0]) / time.Duration(n)
	for i := 1; i < len(cpu1); i++ {
		per := (cpu1[i] - cpu0[i]) / time.Duration(n)
		out.cpuEach = append(out.cpuEach, per)
		out.cpuPerJ += per
	}
	for _, p := range ps {
		m, err := p.memory()
		if err != nil {
			return out, err
		}
		out.rss = append(out.rss, m)
	}
	return out, nil
}

func cpuOf(ps []*proc) ([]time.Duration, error) {
	out := make([]time.Duration, len(ps))
	for i, p := range ps {
		d, err := p.cpuTime()
		if err != nil {
			return nil, err
		}
		out[i] = d
	}
	return out, nil
}

// benchWorker is B5.
func (s *suite) benchWorker(ctx context.Context) error {
	if err := s.ensureAPI(ctx); err != nil {
		return err
	}
	for _, k := range s.workerProcs {
		raw, err := s.drainRun(ctx, k, true, s.workerJobs)
		if err != nil {
			return fmt.Errorf("raw asynq server ×%d: %w", k, err)
		}
		jf, err := s.drainRun(ctx, k, false, s.workerJobs)
		if err != nil {
			return fmt.Errorf("jobforge worker ×%d: %w", k, err)
		}
		x := row{
			Bench: "B5", What: fmt.Sprintf("no-op jobs drained by %d worker process(es)", k),
			Value: jf.rate, Unit: "jobs/s", Display: rate(jf.rate), Baseline: raw.rate, BaseDisp: rate(raw.rate),
			Extra: []string{fmt.Sprintf("CPU per job: jobforge worker %s + redis %s, raw asynq server %s + redis %s",
				us(jf.cpuPerJ), us(jf.redisPer), us(raw.cpuPerJ), us(raw.redisPer))},
		}
		if k == 1 {
			x.Target = "≥ 0.8×"
			x.Pass = check(jf.rate >= 0.8*raw.rate)
			s.res.workerRate = jf.rate
			s.res.workerRSS = jf.rss
			s.res.rawRSS = raw.rss[0]
		}
		s.res.add(x)
		s.res.Throughput = append(s.res.Throughput, barGroup{Label: fmt.Sprintf("worker ×%d", k), Jobforge: jf.rate, Raw: raw.rate})
		s.logf("workers ×%d: jobforge %s, raw %s (%.2f×); CPU/job jobforge %s+%s redis, raw %s+%s redis",
			k, rate(jf.rate), rate(raw.rate), jf.rate/raw.rate, us(jf.cpuPerJ), us(jf.redisPer), us(raw.cpuPerJ), us(raw.redisPer))
	}
	return nil
}

func us(d time.Duration) string { return fmt.Sprintf("%d µs", d.Microseconds()) }
