// Package telemetry holds the process-wide observability plumbing shared by
// the API and the worker: the Prometheus registry, OpenTelemetry tracing
// configured from the standard OTEL_* environment variables, a slog handler
// that stamps trace ids on log lines, and the admin HTTP server (/metrics,
// /healthz, /readyz, /debug/pprof/).
//
// Nothing here is global: run builds each piece and injects it.
package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// NewRegistry returns a Prometheus registry with the Go runtime, process and
// build-info collectors. Every other collector of the process is registered
// on it; nothing uses the global default registry.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	return reg
}
