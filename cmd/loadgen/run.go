package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
)

// allBenchmarks in the order they run. B7 (memory) is read from the
// processes of B1 and B5, B8 also runs as a test in internal/queue.
var allBenchmarks = []string{"B1", "B2", "B3", "B5", "B9", "B4", "B6", "B8", "B7"}

type options struct {
	only        []string
	binDir      string
	outDir      string
	redisServer string

	duration    time.Duration
	warmup      time.Duration
	concurrency []int
	batchSizes  []int
	batchConc   int

	latencyJobs  int
	latencyGap   time.Duration
	loadFraction float64
	loadRate     float64
	schedJobs    int

	workerJobs  int
	workerProcs []int

	pythonJobs int
	python     string
	protoDir   string

	cpuJobs   []time.Duration
	cpuWork   time.Duration
	idleCalls time.Duration

	apiFlags    []string
	workerFlags []string
	pprofDir    string
	logDir      string
}

func (o *options) want(b string) bool { return slices.Contains(o.only, b) }

func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: loadgen [flags]\n\nRuns jobforge's benchmark suite (B1-B9) against raw asynq baselines in the same run.\n\n")
		fs.PrintDefaults()
	}
	var (
		o                                                  options
		only, conc, sizes, procs, cpuJobs, apiFl, workerFl string
	)
	exe, _ := os.Executable()
	fs.StringVar(&only, "only", "", "comma-separated benchmarks to run, e.g. B1,B4 (default all: "+strings.Join(allBenchmarks, ",")+")")
	fs.StringVar(&o.binDir, "bin", filepath.Dir(exe), "directory holding the api and worker binaries")
	fs.StringVar(&o.outDir, "out", "bench/out", "directory for results.md, results.json and chart.png")
	fs.StringVar(&o.logDir, "logs", "bench/out/logs", "directory for the logs of the processes the suite starts")
	fs.StringVar(&o.redisServer, "redis-server", "redis-server", "redis-server binary to start (never an existing Redis)")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "measured time of each throughput run (B1-B3)")
	fs.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "unmeasured time before each throughput run")
	fs.StringVar(&conc, "concurrency", "1,16,64", "client concurrency levels of B1 and B2")
	fs.StringVar(&sizes, "batch-sizes", "10,100,1000", "jobs per BatchCreateJobs request (B3)")
	fs.IntVar(&o.batchConc, "batch-concurrency", 4, "concurrent BatchCreateJobs requests (B3)")
	fs.IntVar(&o.latencyJobs, "latency-jobs", 300, "probe jobs per latency scenario (B4)")
	fs.DurationVar(&o.latencyGap, "latency-gap", 20*time.Millisecond, "mean pause between probe jobs (B4); each pause is random in [gap/2, 3gap/2)")
	fs.Float64Var(&o.loadFraction, "load", 0.5, "background load of B4 as a fraction of the measured capacity")
	fs.Float64Var(&o.loadRate, "load-rate", 0, "background load of B4 in jobs/s (overrides -load)")
	fs.IntVar(&o.schedJobs, "scheduled-jobs", 40, "scheduled jobs whose lateness B4 measures")
	fs.IntVar(&o.workerJobs, "worker-jobs", 20000, "no-op jobs each worker run drains (B5)")
	fs.StringVar(&procs, "worker-procs", "1,2,4", "worker process counts (B5)")
	fs.IntVar(&o.pythonJobs, "python-jobs", 0, "no-op jobs the Python worker drains (B9; default -worker-jobs)")
	fs.StringVar(&o.python, "python", "", "Python 3 with grpcio and grpc_tools for B9 (default /usr/bin/python3, else python3 on PATH)")
	fs.StringVar(&o.protoDir, "proto-dir", "api/proto", "directory of jobforge/v1/worker_service.proto, for the Python worker's stubs (B9)")
	fs.StringVar(&cpuJobs, "cpu-jobs", "10ms,100ms", "per-job CPU times of the CPU-bound jobs (B6)")
	fs.DurationVar(&o.cpuWork, "cpu-work", 4*time.Second, "ideal duration of each CPU-bound run (B6)")
	fs.DurationVar(&o.idleCalls, "idle-window", 3*time.Second, "how long idle Redis calls are counted (B8)")
	fs.StringVar(&o.pprofDir, "pprof-dir", "", "if set, save CPU profiles of the api (B1-B3) and worker (B5) taken from their admin ports during the measurements")
	fs.StringVar(&apiFl, "api-flags", "", "extra flags for the api process, space-separated")
	fs.StringVar(&workerFl, "worker-flags", "", "extra flags for worker processes, space-separated")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if only == "" {
		only = getenv("BENCH")
	}
	var errs []error
	o.only = allBenchmarks
	if strings.TrimSpace(only) != "" {
		o.only = nil
		for b := range strings.SplitSeq(strings.ToUpper(only), ",") {
			b = strings.TrimSpace(b)
			if !slices.Contains(allBenchmarks, b) {
				errs = append(errs, fmt.Errorf("-only: unknown benchmark %q", b))
			}
			o.only = append(o.only, b)
		}
	}
	ints := func(name, s string) []int {
		var out []int
		for f := range strings.SplitSeq(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				errs = append(errs, fmt.Errorf("-%s: want positive integers, got %q", name, f))
				continue
			}
			out = append(out, n)
		}
		return out
	}
	o.concurrency = ints("concurrency", conc)
	o.batchSizes = ints("batch-sizes", sizes)
	o.workerProcs = ints("worker-procs", procs)
	for f := range strings.SplitSeq(cpuJobs, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil || d < time.Millisecond {
			errs = append(errs, fmt.Errorf("-cpu-jobs: want durations of at least 1ms, got %q", f))
			continue
		}
		o.cpuJobs = append(o.cpuJobs, d)
	}
	o.apiFlags, o.workerFlags = strings.Fields(apiFl), strings.Fields(workerFl)
	if o.duration <= 0 || o.latencyJobs < 10 || o.workerJobs < 100 || o.batchConc < 1 || o.schedJobs < 1 {
		errs = append(errs, errors.New("-duration must be positive, -latency-jobs at least 10, -worker-jobs at least 100"))
	}
	if o.pythonJobs == 0 {
		o.pythonJobs = o.workerJobs
	} else if o.pythonJobs < 100 {
		errs = append(errs, errors.New("-python-jobs must be at least 100"))
	}
	return o, errors.Join(errs...)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "raw-worker" {
		return runRawWorker(ctx, args[1:], stderr)
	}
	if len(args) > 0 && args[0] == "remote-worker" {
		return runRemoteWorker(ctx, args[1:], getenv, stderr)
	}
	o, err := parseOptions(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	for _, b := range []string{"api", "worker"} {
		if _, err := os.Stat(filepath.Join(o.binDir, b)); err != nil {
			return fmt.Errorf("%s binary not found in %s (build with `make build` or pass -bin): %w", b, o.binDir, err)
		}
	}
	s := &suite{options: o, out: stderr, res: newResults(args)}
	if err := s.setUp(ctx); err != nil {
		return err
	}
	defer s.tearDown()

	stages := map[string]func(context.Context) error{
		"B1": s.benchCreateGRPC, "B2": s.benchCreateREST, "B3": s.benchBatchCreate,
		"B4": s.benchLatency, "B5": s.benchWorker, "B6": s.benchCPU, "B7": s.benchMemory, "B8": s.benchRedisCalls,
		"B9": s.benchRemoteWorker,
	}
	start := time.Now()
	for _, b := range allBenchmarks {
		if !o.want(b) {
			continue
		}
		s.logf("== %s", b)
		if err := stages[b](ctx); err != nil {
			return fmt.Errorf("%s: %w", b, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	s.res.Elapsed = time.Since(start).Round(time.Second).String()
	return s.res.write(o.outDir, stdout)
}

// suite holds the processes and clients of one run.
type suite struct {
	options
	out     io.Writer
	res     *results
	redis   *proc
	addr    string // redis host:port
	rdb     *redis.Client
	api     *proc
	grpcURL string
	httpURL string
	conn    *grpc.ClientConn
	client  jobforgev1.JobServiceClient
	token   string // API key the clients present

	idleRequests float64 // requests/s of the last idle measurement (B8)
}

func (s *suite) logf(format string, args ...any) {
	fmt.Fprintf(s.out, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func (s *suite) setUp(ctx context.Context) error {
	if err := os.MkdirAll(s.logDir, 0o755); err != nil {
		return err
	}
	var err error
	if s.redis, s.addr, err = startRedis(ctx, s.logDir, s.redisServer); err != nil {
		return err
	}
	s.rdb = redis.NewClient(&redis.Options{Addr: s.addr, PoolSize: 4})
	if info, err := s.rdb.InfoMap(ctx, "server").Result(); err == nil {
		s.res.Machine.Redis = info["Server"]["redis_version"]
	}
	s.logf("redis-server on %s, %d CPUs, binaries from %s", s.addr, runtime.NumCPU(), s.binDir)
	return nil
}

func (s *suite) tearDown() {
	s.stopAPI()
	if s.rdb != nil {
		_ = s.rdb.Close()
	}
	if s.redis != nil {
		s.redis.stop(5 * time.Second)
	}
}

func (s *suite) redisURL() string { return "redis://" + s.addr + "/0" }

// startAPI (re)starts the api process; its peak RSS then covers only what
// runs from now on.
func (s *suite) startAPI(ctx context.Context) error {
	s.stopAPI()
	grpcAddr, err := freeAddr()
	if err != nil {
		return err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return err
	}
	adminAddr, err := freeAddr()
	if err != nil {
		return err
	}
	keys, err := s.apiKey()
	if err != nil {
		return err
	}
	// Production defaults, except that the rate limits and the cap on
	// waiting jobs are set so high that they are checked on every request
	// but never reached: a throughput benchmark must not measure a limit.
	args := []string{
		"-redis-url", s.redisURL(), "-grpc-addr", grpcAddr, "-http-addr", httpAddr, "-admin-addr", adminAddr,
		"-api-keys-file", keys,
		"-rate-limit-write", "1000000", "-rate-limit-read", "1000000",
		"-tenant-rate-limit-write", "1000000", "-tenant-rate-limit-read", "1000000",
		"-max-waiting-per-tenant", "1000000000",
	}
	args = append(args, s.apiFlags...)
	if err := s.publishTypes(ctx); err != nil {
		return err
	}
	p, err := startProc(s.logDir, "api", filepath.Join(s.binDir, "api"), args...)
	if err != nil {
		return err
	}
	p.admin = adminAddr
	s.api, s.grpcURL, s.httpURL = p, grpcAddr, "http://"+httpAddr
	if err := p.waitReady(ctx, httpReady(s.httpURL+"/readyz")); err != nil {
		return err
	}
	s.conn, err = grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return invoker(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+s.token), method, req, reply, cc, opts...)
		}))
	if err != nil {
		return err
	}
	s.client = jobforgev1.NewJobServiceClient(s.conn)
	return nil
}

// apiKey writes an API keys file with one key of every scope for tenant
// "bench" and returns its path; s.token is the key.
func (s *suite) apiKey() (string, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return "", err
	}
	s.token = "jfk_bench." + hex.EncodeToString(secret)
	sum := sha256.Sum256([]byte(s.token))
	b, err := json.Marshal(map[string]any{"keys": []map[string]any{{
		"id": "bench", "tenant": "bench", "sha256": hex.EncodeToString(sum[:]),
		"scopes": []string{"jobs.read", "jobs.write", "jobs.cancel", "admin", "worker"},
	}}})
	if err != nil {
		return "", err
	}
	return s.keysFile(), os.WriteFile(s.keysFile(), b, 0o600)
}

// keysFile is the API keys file apiKey writes; worker processes serving the
// worker protocol read it too (B9).
func (s *suite) keysFile() string { return filepath.Join(s.logDir, "api-keys.json") }

func (s *suite) ensureAPI(ctx context.Context) error {
	if s.api != nil {
		return nil
	}
	return s.startAPI(ctx)
}

func (s *suite) stopAPI() {
	if s.conn != nil {
		_ = s.conn.Close()
		s.conn, s.client = nil, nil
	}
	if s.api != nil {
		s.api.stop(30 * time.Second)
		s.api = nil
	}
}

// startWorkers starts n worker processes with extra flags and waits until
// each is ready.
func (s *suite) startWorkers(ctx context.Context, n int, extra ...string) ([]*proc, error) {
	var ps []*proc
	for i := range n {
		addr, err := freeAddr()
		if err != nil {
			return ps, err
		}
		args := append([]string{"-redis-url", s.redisURL(), "-admin-addr", addr}, s.workerFlags...)
		args = append(args, extra...)
		p, err := startProc(s.logDir, fmt.Sprintf("worker-%d", i+1), filepath.Join(s.binDir, "worker"), args...)
		if err != nil {
			return ps, err
		}
		p.admin = addr
		ps = append(ps, p)
		if err := p.waitReady(ctx, httpReady("http://"+addr+"/readyz")); err != nil {
			return ps, err
		}
	}
	return ps, nil
}

func stopAll(ps []*proc) {
	for _, p := range ps {
		_ = p.cmd.Process.Signal(os.Interrupt)
	}
	for _, p := range ps {
		p.stop(30 * time.Second)
	}
}

// flush empties Redis between benchmarks (no worker may be running). It
// first gives requests the clients abandoned at the end of a timed run a
// moment to finish in the api, so that they do not land after the flush.
func (s *suite) flush(ctx context.Context) error {
	time.Sleep(300 * time.Millisecond)
	if err := s.rdb.FlushAll(ctx).Err(); err != nil {
		return err
	}
	if err := s.publishTypes(ctx); err != nil {
		return err
	}
	if s.api == nil {
		return nil
	}
	// The api may have cached the empty catalogue between the flush and
	// the publish; listing the job types refreshes its cache.
	return s.api.waitReady(ctx, s.typeListed("simulate"))
}

// publishTypes publishes the built-in job types (`worker publish`): the API
// accepts the types workers publish, and the create benchmarks run it
// without workers.
func (s *suite) publishTypes(ctx context.Context) error {
	publish := exec.CommandContext(ctx, filepath.Join(s.binDir, "worker"), "publish", "-redis-url", s.redisURL())
	if out, err := publish.CombinedOutput(); err != nil {
		return fmt.Errorf("worker publish: %w\n%s", err, out)
	}
	return nil
}
