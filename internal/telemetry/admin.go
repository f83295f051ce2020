package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ReadyTimeout bounds one readiness check, so /readyz answers within a
// second even when Redis hangs rather than refuses.
const ReadyTimeout = 800 * time.Millisecond

// AdminOptions configures an Admin server.
type AdminOptions struct {
	// Addr is the listen address, e.g. ":8081".
	Addr string
	// Gatherer is served at /metrics.
	Gatherer prometheus.Gatherer
	// Ready reports whether the process's dependencies (Redis) answer.
	Ready  func(ctx context.Context) error
	Logger *slog.Logger
}

// Admin is the operator-facing HTTP server of a process, on its own port so
// that none of it is reachable through the public listener:
//
//	/metrics        Prometheus metrics
//	/healthz        the process is alive
//	/readyz         Redis answers and the process is not shutting down
//	/debug/pprof/   Go profiling
type Admin struct {
	opts     AdminOptions
	lis      net.Listener
	srv      *http.Server
	stopping atomic.Bool
}

// NewAdmin binds the admin listener.
func NewAdmin(opts AdminOptions) (*Admin, error) {
	a := &Admin{opts: opts}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{
		EnableOpenMetrics: true, // exemplars carry trace ids
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
		Timeout:           10 * time.Second,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	a.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	lis, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen admin: %w", err)
	}
	a.lis = lis
	return a, nil
}

// Addr is the bound address.
func (a *Admin) Addr() string { return a.lis.Addr().String() }

// SetStopping turns readiness off for good: the first step of shutdown.
func (a *Admin) SetStopping() { a.stopping.Store(true) }

func (a *Admin) readyz(w http.ResponseWriter, r *http.Request) {
	if a.stopping.Load() {
		http.Error(w, "shutting down\n", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
	defer cancel()
	if err := a.opts.Ready(ctx); err != nil {
		http.Error(w, "redis unreachable\n", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// Serve serves until Shutdown.
func (a *Admin) Serve() error {
	if err := a.srv.Serve(a.lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve admin: %w", err)
	}
	return nil
}

// Shutdown stops the server, letting in-flight requests (a scrape, a
// profile) finish for a few seconds.
func (a *Admin) Shutdown() error {
	a.SetStopping()
	defer a.lis.Close() // when Serve never ran
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.srv.Shutdown(ctx); err != nil {
		return a.srv.Close()
	}
	return nil
}

// Run serves until ctx is done, then turns readiness off and waits for
// release to close (the process's main server has drained) before closing,
// so metrics stay scrapeable during the drain. A nil release closes at once.
func (a *Admin) Run(ctx context.Context, release <-chan struct{}) error {
	errc := make(chan error, 1)
	go func() { errc <- a.Serve() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	a.SetStopping()
	if release != nil {
		select {
		case <-release:
		case err := <-errc:
			return err
		}
	}
	shutdownErr := a.Shutdown()
	if err := <-errc; err != nil {
		return err
	}
	return shutdownErr
}
