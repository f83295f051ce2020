// Package app assembles jobforge's processes from their parts: the API
// server (with an in-process worker in dev mode) and the worker.
package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/jobforge/jobforge/internal/api"
	"github.com/jobforge/jobforge/internal/auth"
	"github.com/jobforge/jobforge/internal/autoscale"
	"github.com/jobforge/jobforge/internal/catalog"
	"github.com/jobforge/jobforge/internal/config"
	"github.com/jobforge/jobforge/internal/queue"
	"github.com/jobforge/jobforge/jobs"
)

// registry returns the job types a worker runs, checking that each type's
// default queue is one the worker is configured to read.
func registry(cfg config.Config, types []*jobs.Type) (*jobs.Registry, error) {
	reg, err := jobs.NewRegistry(types...)
	if err != nil {
		return nil, err
	}
	queues := cfg.AllQueues()
	for _, t := range reg.Types() {
		if !slices.Contains(queues, t.Queue()) {
			return nil, fmt.Errorf("job type %q defaults to queue %q, which is not configured (queues: %s)",
				t.Name(), t.Queue(), strings.Join(queues, ", "))
		}
	}
	return reg, nil
}

func newWorker(rdb queue.Client, reg *jobs.Registry, cfg config.Config, log *slog.Logger, obs *observability) *queue.Worker {
	var pools []queue.Pool
	for _, p := range cfg.Pools {
		switch p {
		case "io":
			if len(cfg.Queues) > 0 {
				pools = append(pools, queue.Pool{Name: "io", Queues: cfg.Queues, Concurrency: cfg.Concurrency})
			}
		case "cpu":
			if len(cfg.CPUQueues) > 0 {
				pools = append(pools, queue.Pool{Name: "cpu", Queues: cfg.CPUQueues, Concurrency: cfg.CPUConcurrency, PollInterval: cfg.CPUPollInterval})
			}
		}
	}
	opts := workerOptions(cfg, log, obs)
	opts.Pools = pools
	return queue.NewWorker(rdb, reg, opts)
}

// workerOptions are the settings every worker runtime of this process
// shares (the pools aside).
func workerOptions(cfg config.Config, log *slog.Logger, obs *observability) queue.WorkerOptions {
	return queue.WorkerOptions{
		PollInterval:         cfg.PollInterval,
		DelayedCheckInterval: cfg.DelayedCheckInterval,
		ShutdownTimeout:      cfg.ShutdownTimeout,
		LostAfter:            cfg.LostAfter,
		MaxLostAttempts:      cfg.MaxLostAttempts,
		AllowCrashJobs:       cfg.AllowCrashJobs,
		Retention:            cfg.Retention,
		Logger:               log,
		Metrics:              obs.metrics,
		TracerProvider:       obs.tracing.Provider,
	}
}

// RunAPI runs the API server until ctx is done. The API validates jobs
// against the catalogue that workers publish, so it needs no job code. In
// dev mode, without a Redis URL, it runs an embedded in-memory store, and
// with inProcess types it also runs a worker for them in this process (the
// all-in-one development server, cmd/jobforge-dev).
func RunAPI(ctx context.Context, cfg config.Config, log *slog.Logger, stdout io.Writer, inProcess []*jobs.Type) error {
	var reg *jobs.Registry
	if cfg.Dev && len(inProcess) > 0 {
		var err error
		if reg, err = registry(cfg, inProcess); err != nil {
			return err
		}
	}
	obs, err := newObservability(ctx, "jobforge-api")
	if err != nil {
		return err
	}
	defer obs.close(log)
	redisCfg := redisConfig(cfg)
	var embedded *queue.Embedded
	if !cfg.RedisSentinel() && !cfg.RedisCluster() && cfg.RedisURL == "" {
		if embedded, err = queue.StartEmbedded(); err != nil {
			return err
		}
		defer embedded.Close()
		redisCfg = queue.RedisConfig{URL: embedded.URL()}
	}
	rdb, err := queue.ConnectConfig(ctx, redisCfg)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := queue.Migrate(ctx, rdb, log); err != nil {
		return err
	}
	if embedded == nil {
		queue.CheckDurability(ctx, rdb, log)
		queue.CheckReplicas(ctx, rdb, cfg.RedisMinReplicas, log)
	}
	authn, dev, err := authenticator(ctx, cfg, log)
	if err != nil {
		return err
	}
	var tlsConfig *tls.Config
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("load TLS certificate: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	}

	store := queue.NewStore(rdb, log, queue.StoreOptions{
		Retention: cfg.Retention, IdempotencyWindow: cfg.IdempotencyWindow, MaxWaitingPerTenant: cfg.MaxWaitingPerTenant,
		MinReplicas: cfg.RedisMinReplicas, ReplicaTimeout: cfg.RedisReplicaTimeout,
		Metrics: obs.metrics,
	})
	defer store.Close()
	if err := queue.RegisterQueues(ctx, rdb, cfg.AllQueues()); err != nil { // so /monitoring finds queues no job has used yet
		return err
	}
	tokenKey, err := store.SharedSecret(ctx, "page-token")
	if err != nil {
		return err
	}
	types := catalog.NewCache(queue.CatalogSource(rdb), catalog.CacheOptions{Logger: log, Registerer: obs.registry})
	catalogCtx, stopCatalog := context.WithCancel(ctx)
	defer stopCatalog()
	go types.Run(catalogCtx)
	svc := api.NewService(store, types, cfg.AllQueues(), tokenKey, log)
	srv, err := api.NewServer(api.Options{
		GRPCAddr:        cfg.GRPCAddr,
		HTTPAddr:        cfg.HTTPAddr,
		DrainDelay:      cfg.DrainDelay,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Ready:           store.Ping,
		Auth:            authn,
		Limiter:         queue.NewLimiter(rdb),
		Limits: api.Limits{
			PrincipalWrite: cfg.RateWrite, PrincipalRead: cfg.RateRead,
			TenantWrite: cfg.TenantRateWrite, TenantRead: cfg.TenantRateRead,
		},
		MaxBodyBytes:    int64(cfg.MaxBodyBytes),
		TLSConfig:       tlsConfig,
		Logger:          log,
		QueueService:    api.NewQueueService(store, cfg.AllQueues(), log),
		ScheduleService: api.NewScheduleService(store, svc, log),
		Metrics:         obs.registry,
		TracerProvider:  obs.tracing.Provider,
		Monitoring:      queue.MonitoringHandler(rdb, "/monitoring"),
	}, svc)
	if err != nil {
		return err
	}
	admin, err := obs.admin(cfg, log, store.Ping)
	if err != nil {
		return err
	}
	stats := queue.NewQueueStats(rdb, queue.QueueStatsOptions{Queues: cfg.AllQueues(), Logger: log})
	obs.registry.MustRegister(stats)
	if reg != nil {
		w := newWorker(rdb, reg, cfg, log.With("component", "worker"), obs)
		if err := w.Start(); err != nil {
			return err
		}
		// Deferred after rdb.Close, so it runs first: the worker drains
		// before Redis goes away.
		defer w.Shutdown()
		defer runScheduler(ctx, store, log)()
	}
	var scaling *autoscale.Server
	if cfg.AutoscalingAddr != "" {
		backlog := func(ctx context.Context, queues []string) ([]queue.QueueLoad, error) {
			return queue.Backlog(ctx, rdb, queues)
		}
		if scaling, err = autoscale.NewServer(cfg.AutoscalingAddr, backlog, cfg.AllQueues(), log); err != nil {
			return err
		}
		log.Info("serving the worker backlog for autoscaling", "autoscaling_addr", scaling.Addr(), "path", autoscale.Path)
	}
	log.Info("api started", "grpc_addr", srv.GRPCAddr(), "http_addr", srv.HTTPAddr(), "admin_addr", admin.Addr(),
		"dev", cfg.Dev, "embedded_store", embedded != nil)
	if cfg.Dev {
		printBanner(stdout, cfg, srv, admin.Addr(), embedded, dev, reg)
	}
	return serveAPI(ctx, srv, admin, stats, scaling)
}

func printBanner(w io.Writer, cfg config.Config, srv *api.Server, adminAddr string, embedded *queue.Embedded, dev devAccess, reg *jobs.Registry) {
	httpURL := "http://" + localAddr(srv.HTTPAddr())
	grpcAddr := localAddr(srv.GRPCAddr())
	fmt.Fprintln(w, "\njobforge is running in development mode")
	if embedded != nil {
		fmt.Fprintf(w, "  store:   embedded in-memory Redis-compatible store (%s)\n", embedded.URL())
		fmt.Fprintln(w, "           NOT DURABLE: every job is lost when this process exits.")
		fmt.Fprintln(w, "           Set REDIS_URL=redis://host:6379/0 to use a real Redis.")
	} else {
		fmt.Fprintln(w, "  store:   Redis at REDIS_URL")
	}
	if reg != nil {
		names := make([]string, 0, len(reg.Types()))
		for _, t := range reg.Types() {
			names = append(names, t.Name())
		}
		fmt.Fprintf(w, "  worker:  in-process, running %s (io pool: %s x%d; cpu pool: %s x%d)\n",
			strings.Join(names, ", "), weights(cfg.Queues), cfg.Concurrency, weights(cfg.CPUQueues), cfg.CPUConcurrency)
	} else {
		store := "REDIS_URL"
		if embedded != nil {
			store = embedded.URL()
		}
		fmt.Fprintln(w, "  worker:  none in this process; jobs wait until a worker publishes their type. Start one:")
		fmt.Fprintf(w, "           REDIS_URL=%s go run ./cmd/worker   (or make run for the all-in-one server)\n", store)
	}
	fmt.Fprintf(w, "  REST:    %s   OpenAPI: %s/openapi.json   docs: %s/docs\n", httpURL, httpURL, httpURL)
	fmt.Fprintf(w, "  gRPC:    %s   (reflection and health need no key)\n", grpcAddr)
	restAuth, grpcAuth := ` -H "Authorization: Bearer $JF_KEY"`, ` -H "authorization: Bearer $JF_KEY"`
	switch {
	case cfg.AuthDisabled:
		fmt.Fprintln(w, "  auth:    DISABLED: every caller has full access")
		restAuth, grpcAuth = "", ""
	case dev.key != "":
		how := map[devKeySource]string{
			devKeyFromEnv: "JOBFORGE_DEV_KEY", devKeyReused: "kept from the last run", devKeyCreated: "new",
		}[dev.src]
		fmt.Fprintf(w, "  auth:    dev API key (%s; full access to tenant \"dev\"), saved in %s:\n", how, devKeyFile)
		fmt.Fprintf(w, "           export JF_KEY=%s\n", dev.key)
	default:
		fmt.Fprintln(w, "  auth:    API keys / JWT as configured; export JF_KEY=<your key>")
	}
	fmt.Fprintf(w, "  try:     curl -s%s %s/v1/jobTypes\n", restAuth, httpURL)
	fmt.Fprintf(w, "           curl -s%s %s/v1/jobs -d '{\"type\":\"primes\",\"payload\":{\"limit\":1000000}}'\n", restAuth, httpURL)
	fmt.Fprintf(w, "           grpcurl -plaintext%s %s jobforge.v1.JobService/ListJobTypes\n", grpcAuth, grpcAddr)
	if dev.key != "" {
		fmt.Fprintf(w, "           jobctl --addr %s types   (jobctl reads %s in this directory)\n", grpcAddr, devKeyFile)
	} else {
		fmt.Fprintf(w, "           jobctl --addr %s --token \"$JF_KEY\" types\n", grpcAddr)
	}
	if cfg.AuthDisabled {
		fmt.Fprintf(w, "  queues:  %s/monitoring\n", httpURL)
	} else {
		fmt.Fprintf(w, "  queues:  %s/monitoring   (log in with any user name and the key as password)\n", httpURL)
	}
	fmt.Fprintf(w, "  admin:   http://%s/metrics   /readyz   /debug/pprof/\n\n", localAddr(adminAddr))
}

func localAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "::" || host == "0.0.0.0" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func weights(qs map[string]int) string {
	names := slices.Sorted(maps.Keys(qs))
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s=%d", n, qs[n])
	}
	return strings.Join(parts, ",")
}

// RunWorker runs a worker until ctx is done, with /healthz and /readyz on
// the admin address. Shutdown: readiness off, stop fetching, let running
// jobs finish within the shutdown timeout (the rest are requeued), close.
func RunWorker(ctx context.Context, cfg config.Config, log *slog.Logger, types []*jobs.Type) error {
	reg, err := registry(cfg, types)
	if err != nil {
		return err
	}
	obs, err := newObservability(ctx, "jobforge-worker")
	if err != nil {
		return err
	}
	defer obs.close(log)
	rdb, err := queue.ConnectConfig(ctx, redisConfig(cfg))
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := queue.Migrate(ctx, rdb, log); err != nil {
		return err
	}
	queue.CheckDurability(ctx, rdb, log)

	w := newWorker(rdb, reg, cfg, log, obs)
	store := queue.NewStore(rdb, log, queue.StoreOptions{Metrics: obs.metrics})
	admin, err := obs.admin(cfg, log, store.Ping)
	if err != nil {
		return err
	}

	if err := w.Start(); err != nil {
		_ = admin.Shutdown()
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	protocol, err := startWorkerProtocol(gctx, g, cfg, log, rdb, obs)
	if err != nil {
		w.Shutdown()
		_ = admin.Shutdown()
		return err
	}
	log.Info("worker started", "admin_addr", admin.Addr(), "pools", cfg.Pools,
		"queues", weights(cfg.Queues), "cpu_queues", weights(cfg.CPUQueues), "worker_protocol_addr", protocol)

	sched := queue.NewScheduler(store, queue.SchedulerOptions{Logger: log.With("component", "scheduler")})
	g.Go(func() error { return sched.Run(gctx) })
	drained := make(chan struct{})
	g.Go(func() error { return admin.Run(gctx, drained) })
	g.Go(func() error {
		defer close(drained) // the admin port closes once the jobs are drained
		<-gctx.Done()
		admin.SetStopping()
		log.Info("worker stopping; draining running jobs", "timeout", cfg.ShutdownTimeout)
		w.Shutdown()
		return nil
	})
	return g.Wait()
}

// PublishTypes publishes the catalogue entries of types to Redis and
// returns: the API then accepts their jobs, which wait until a worker runs
// them (`worker publish`, e.g. before a rollout).
func PublishTypes(ctx context.Context, cfg config.Config, log *slog.Logger, types []*jobs.Type) error {
	reg, err := registry(cfg, types)
	if err != nil {
		return err
	}
	rdb, err := queue.ConnectConfig(ctx, redisConfig(cfg))
	if err != nil {
		return err
	}
	defer rdb.Close()
	entries := make([]catalog.Entry, 0, len(reg.Types()))
	names := make([]string, 0, len(reg.Types()))
	for _, t := range reg.Types() {
		entries = append(entries, catalog.EntryOf(t))
		names = append(names, t.Name())
	}
	if err := queue.PublishCatalog(ctx, rdb, entries); err != nil {
		return fmt.Errorf("publish job types: %w", err)
	}
	log.Info("job types published", "types", names)
	return nil
}

// runScheduler runs the schedules' job creation in the background (every
// worker process runs one; replicas need no coordination) and returns a
// function that stops it and waits for it.
func runScheduler(ctx context.Context, store *queue.Store, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	sched := queue.NewScheduler(store, queue.SchedulerOptions{Logger: log.With("component", "scheduler")})
	go func() { defer close(done); _ = sched.Run(ctx) }()
	return func() { cancel(); <-done }
}

// redisConfig is how the process reaches Redis: REDIS_URL, or Sentinel or
// Cluster setting by setting.
func redisConfig(cfg config.Config) queue.RedisConfig {
	return queue.RedisConfig{
		URL:            cfg.RedisURL,
		ClusterAddrs:   cfg.RedisClusterAddrs,
		SentinelMaster: cfg.RedisSentinelMaster, SentinelAddrs: cfg.RedisSentinelAddrs,
		SentinelUsername: cfg.RedisSentinelUsername, SentinelPassword: cfg.RedisSentinelPassword,
		Username: cfg.RedisUsername, Password: cfg.RedisPassword, DB: cfg.RedisDB, TLS: cfg.RedisTLS,
		TLSFiles: queue.TLSFiles{CA: cfg.RedisCA, Cert: cfg.RedisCert, Key: cfg.RedisKey},
	}
}

// devAccess is the dev mode key and where it came from (the zero value:
// no dev key).
type devAccess struct {
	key string
	src devKeySource
}

// authenticator builds the API's authenticator from the configured API keys
// and JWT settings. In dev mode without either it accepts one dev key with
// full access to tenant "dev" (see loadDevKey), returned so the banner can
// show it. It returns nil when authentication is disabled explicitly.
func authenticator(ctx context.Context, cfg config.Config, log *slog.Logger) (a *auth.Authenticator, dev devAccess, err error) {
	if cfg.AuthDisabled {
		return nil, dev, nil
	}
	var keys []auth.Key
	if cfg.APIKeysFile != "" {
		if keys, err = auth.LoadKeys(cfg.APIKeysFile); err != nil {
			return nil, dev, err
		}
	}
	var jwtv *auth.JWTVerifier
	if cfg.JWTJWKS != "" {
		if jwtv, err = auth.NewJWTVerifier(ctx, auth.JWTConfig{
			JWKS: cfg.JWTJWKS, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience,
			Algorithms: cfg.JWTAlgorithms, TenantClaim: cfg.JWTTenantClaim,
		}); err != nil {
			return nil, dev, err
		}
	}
	if cfg.Dev && len(keys) == 0 && jwtv == nil {
		var writeErr error
		if dev.key, dev.src, writeErr, err = loadDevKey(devKeyFile, cfg.DevKey); err != nil {
			return nil, dev, err
		}
		if writeErr != nil {
			log.Warn("dev key not saved; jobctl and later runs will not find it", "error", writeErr)
		}
		keys = []auth.Key{auth.HashedKey(dev.key, "dev", "dev", auth.AllScopes)}
	}
	a, err = auth.New(keys, jwtv)
	return a, dev, err
}
