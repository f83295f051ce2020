package telemetry

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Tracing is a process's tracer provider. It is a no-op unless tracing is
// configured through the environment.
type Tracing struct {
	Provider trace.TracerProvider
	shutdown func(context.Context) error
}

// Propagator is the W3C trace-context and baggage propagator used on every
// boundary the process controls (HTTP, gRPC metadata, job headers).
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// Enabled reports whether the standard OTEL_* variables ask for traces to be
// exported: OTEL_TRACES_EXPORTER names an exporter other than "none", or an
// OTLP endpoint is set; OTEL_SDK_DISABLED=true wins over both. With none of
// them set tracing is off, so an unconfigured process does not try to reach
// a collector that is not there.
func Enabled(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	if exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exp != "" {
		return exp != "none"
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// NewTracing builds the tracer provider from the environment. When tracing
// is enabled (see Enabled), the exporter is chosen by OTEL_TRACES_EXPORTER
// (otlp by default, console, none) and configured by the OTEL_EXPORTER_OTLP_*
// variables (endpoint, protocol grpc or http/protobuf, headers, timeout);
// the sampler follows OTEL_TRACES_SAMPLER and the resource
// OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, with service.name defaulting
// to service.
func NewTracing(ctx context.Context, getenv func(string) string, service string) (*Tracing, error) {
	if !Enabled(getenv) {
		return &Tracing{Provider: noop.NewTracerProvider(), shutdown: func(context.Context) error { return nil }}, nil
	}
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: build exporter from OTEL_* environment: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service)),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("tracing: build resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Tracing{Provider: tp, shutdown: tp.Shutdown}, nil
}

// Shutdown flushes buffered spans and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error { return t.shutdown(ctx) }
