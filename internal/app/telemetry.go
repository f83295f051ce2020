package app

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/jobforge/jobforge/internal/api"
	"github.com/jobforge/jobforge/internal/autoscale"
	"github.com/jobforge/jobforge/internal/config"
	"github.com/jobforge/jobforge/internal/queue"
	"github.com/jobforge/jobforge/internal/telemetry"
)

// observability is a process's telemetry: one Prometheus registry (never
// the global one), the tracer provider configured by the OTEL_* variables,
// and the job metrics on that registry. In dev mode the API and its
// in-process worker share it.
type observability struct {
	registry *prometheus.Registry
	tracing  *telemetry.Tracing
	metrics  *queue.Metrics
}

func newObservability(ctx context.Context, service string) (*observability, error) {
	tracing, err := telemetry.NewTracing(ctx, os.Getenv, service)
	if err != nil {
		return nil, err
	}
	reg := telemetry.NewRegistry()
	m, err := queue.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &observability{registry: reg, tracing: tracing, metrics: m}, nil
}

// close flushes buffered spans.
func (o *observability) close(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o.tracing.Shutdown(ctx); err != nil {
		log.Warn("flush traces", "error", err)
	}
}

// admin binds the process's admin server: metrics, health, pprof.
func (o *observability) admin(cfg config.Config, log *slog.Logger, ready func(context.Context) error) (*telemetry.Admin, error) {
	return telemetry.NewAdmin(telemetry.AdminOptions{Addr: cfg.AdminAddr, Gatherer: o.registry, Ready: ready, Logger: log})
}

// serveAPI runs the API server with its admin server and the cluster queue
// metrics until ctx is done. Readiness turns off on both ports first; the
// admin port closes last, so metrics stay scrapeable while the API drains.
func serveAPI(ctx context.Context, srv *api.Server, admin *telemetry.Admin, stats *queue.QueueStats, scaling *autoscale.Server) error {
	drained := make(chan struct{})
	g, gctx := errgroup.WithContext(ctx)
	if scaling != nil { // the worker backlog, for the autoscaler (nil: not served)
		g.Go(func() error { return scaling.Run(gctx) })
	}
	g.Go(func() error { return admin.Run(gctx, drained) })
	g.Go(func() error { stats.Run(gctx); return nil })
	g.Go(func() error { defer close(drained); return srv.Run(gctx) })
	return g.Wait()
}
