// Package app assembles jobforge's processes from their parts: the API
// server (with an in-process worker in dev mode) and the worker.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/jobforge/jobforge/internal/api"
	"github.com/jobforge/jobforge/internal/config"
	"github.com/jobforge/jobforge/internal/queue"
	"github.com/jobforge/jobforge/jobs"
)

// registry returns the built-in job types, checking that each type's
// default queue is one that workers are configured to read.
func registry(cfg config.Config) (*jobs.Registry, error) {
	reg, err := jobs.NewRegistry(jobs.Builtin()...)
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

func newWorker(rdb queue.Client, reg *jobs.Registry, cfg config.Config, log *slog.Logger) *queue.Worker {
	var pools []queue.Pool
	for _, p := range cfg.Pools {
		switch p {
		case "io":
			if len(cfg.Queues) > 0 {
				pools = append(pools, queue.Pool{Name: "io", Queues: cfg.Queues, Concurrency: cfg.Concurrency})
			}
		case "cpu":
			if len(cfg.CPUQueues) > 0 {
				pools = append(pools, queue.Pool{Name: "cpu", Queues: cfg.CPUQueues, Concurrency: cfg.CPUConcurrency})
			}
		}
	}
	return queue.NewWorker(rdb, reg, queue.WorkerOptions{
		Pools:                pools,
		PollInterval:         cfg.PollInterval,
		DelayedCheckInterval: cfg.DelayedCheckInterval,
		ShutdownTimeout:      cfg.ShutdownTimeout,
		Retention:            cfg.Retention,
		Logger:               log,
	})
}

// RunAPI runs the API server until ctx is done. In dev mode it also runs a
// worker in-process and, without a Redis URL, an embedded in-memory store.
func RunAPI(ctx context.Context, cfg config.Config, log *slog.Logger, stdout io.Writer) error {
	reg, err := registry(cfg)
	if err != nil {
		return err
	}
	redisURL := cfg.RedisURL
	var embedded *queue.Embedded
	if redisURL == "" {
		if embedded, err = queue.StartEmbedded(); err != nil {
			return err
		}
		defer embedded.Close()
		redisURL = embedded.URL()
	}
	rdb, err := queue.Connect(ctx, redisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()

	store := queue.NewStore(rdb, log, queue.StoreOptions{Retention: cfg.Retention, IdempotencyWindow: cfg.IdempotencyWindow})
	tokenKey, err := store.SharedSecret(ctx, "page-token")
	if err != nil {
		return err
	}
	svc := api.NewService(store, reg, cfg.AllQueues(), tokenKey, log)
	srv, err := api.NewServer(api.Options{
		GRPCAddr:        cfg.GRPCAddr,
		HTTPAddr:        cfg.HTTPAddr,
		DrainDelay:      cfg.DrainDelay,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Ready:           store.Ping,
		Logger:          log,
	}, svc)
	if err != nil {
		return err
	}
	if cfg.Dev {
		w := newWorker(rdb, reg, cfg, log.With("component", "worker"))
		if err := w.Start(); err != nil {
			return err
		}
		// Deferred after rdb.Close, so it runs first: the worker drains
		// before Redis goes away.
		defer w.Shutdown()
	}
	log.Info("api started", "grpc_addr", srv.GRPCAddr(), "http_addr", srv.HTTPAddr(), "dev", cfg.Dev, "embedded_store", embedded != nil)
	if cfg.Dev {
		printBanner(stdout, cfg, srv, embedded)
	}
	return srv.Run(ctx)
}

func printBanner(w io.Writer, cfg config.Config, srv *api.Server, embedded *queue.Embedded) {
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
	fmt.Fprintf(w, "  worker:  in-process (io pool: %s x%d; cpu pool: %s x%d)\n",
		weights(cfg.Queues), cfg.Concurrency, weights(cfg.CPUQueues), cfg.CPUConcurrency)
	fmt.Fprintf(w, "  REST:    %s       try: curl -s %s/v1/jobTypes\n", httpURL, httpURL)
	fmt.Fprintf(w, "  gRPC:    %s         try: grpcurl -plaintext %s list\n", grpcAddr, grpcAddr)
	fmt.Fprintf(w, "  OpenAPI: %s/openapi.json\n", httpURL)
	fmt.Fprintf(w, "  submit:  curl -s -XPOST %s/v1/jobs -d '{\"type\":\"primes\",\"payload\":{\"limit\":1000000}}'\n\n", httpURL)
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
func RunWorker(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	reg, err := registry(cfg)
	if err != nil {
		return err
	}
	rdb, err := queue.Connect(ctx, cfg.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()

	w := newWorker(rdb, reg, cfg, log)
	store := queue.NewStore(rdb, log)
	var stopping atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) { _, _ = rw.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, r *http.Request) {
		if stopping.Load() {
			http.Error(rw, "shutting down\n", http.StatusServiceUnavailable)
			return
		}
		pctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if err := store.Ping(pctx); err != nil {
			http.Error(rw, "redis unreachable\n", http.StatusServiceUnavailable)
			return
		}
		_, _ = rw.Write([]byte("ok\n"))
	})
	lis, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		return fmt.Errorf("listen admin: %w", err)
	}
	admin := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	if err := w.Start(); err != nil {
		_ = lis.Close()
		return err
	}
	log.Info("worker started", "admin_addr", lis.Addr().String(), "pools", cfg.Pools,
		"queues", weights(cfg.Queues), "cpu_queues", weights(cfg.CPUQueues))

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := admin.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve admin: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		stopping.Store(true)
		log.Info("worker stopping; draining running jobs", "timeout", cfg.ShutdownTimeout)
		w.Shutdown()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return admin.Shutdown(sctx)
	})
	return g.Wait()
}
