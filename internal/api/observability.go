package api

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"

	"github.com/jobforge/jobforge/internal/telemetry"
)

// Transports, the values of the transport label of the RPC metrics: the
// same RPC counts under "grpc" when called over gRPC and under "http" when
// called through the REST gateway.
const (
	transportGRPC = "grpc"
	transportHTTP = "http"
)

// observability instruments both transports of the server: RPC metrics
// (rpcmetrics.go) as the outermost interceptor, so they see the final
// status code; with tracing configured, OpenTelemetry spans from a stats
// handler on the gRPC server and on the in-process channel (without, an
// interceptor only carries the caller's trace context on to the jobs); and,
// for REST, an HTTP server span whose context the gateway hands on as gRPC
// metadata.
type observability struct {
	rpc        *rpcMetrics // nil without a registry
	httpCount  *prometheus.CounterVec
	httpTime   *prometheus.HistogramVec
	tp         trace.TracerProvider
	propagator propagation.TextMapPropagator
}

func newObservability(reg prometheus.Registerer, tp trace.TracerProvider) (*observability, error) {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	o := &observability{tp: tp, propagator: telemetry.Propagator()}
	if reg == nil {
		return o, nil
	}
	o.rpc = newRPCMetrics([]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30})
	o.httpCount = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "jobforge", Name: "http_requests_total",
		Help: "HTTP requests on the public port by handler (api, docs, monitoring), method and status code.",
	}, []string{"handler", "method", "code"})
	o.httpTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "jobforge", Name: "http_request_duration_seconds",
		Help:    "Latency of HTTP requests on the public port by handler and method (watch streams last as long as the stream).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"handler", "method"})
	for _, c := range []prometheus.Collector{o.rpc, o.httpCount, o.httpTime} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// unary is the metrics interceptor of a transport.
func (o *observability) unary(transport string) grpc.UnaryServerInterceptor {
	if o.rpc == nil {
		return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			return h(ctx, req)
		}
	}
	return o.rpc.unary(transport)
}

// stream is the metrics interceptor of a transport.
func (o *observability) stream(transport string) grpc.StreamServerInterceptor {
	if o.rpc == nil {
		return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			return h(srv, ss)
		}
	}
	return o.rpc.stream(transport)
}

// exemplar attaches the trace id of a sampled request to its metrics.
func exemplar(ctx context.Context) prometheus.Labels {
	if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() {
		return prometheus.Labels{"trace_id": sc.TraceID().String()}
	}
	return nil
}

// tracing reports whether spans are recorded: tracing was configured (see
// telemetry.Enabled).
func (o *observability) tracing() bool {
	_, off := o.tp.(noop.TracerProvider)
	return !off
}

// serverOptions are the gRPC server's tracing options: with tracing on, the
// otelgrpc stats handler (a span per RPC); with it off, only the caller's
// trace context is taken from the metadata, so that it still flows into
// the jobs the call creates. (The stats handler costs a request about a
// tenth of the API's CPU even with a no-op tracer: it copies the metadata
// twice and is called for every header, message and trailer.)
func (o *observability) serverOptions() []grpc.ServerOption {
	if o.tracing() {
		return []grpc.ServerOption{grpc.StatsHandler(o.statsHandler())}
	}
	return nil
}

// continueTrace puts the caller's trace context (W3C traceparent and
// baggage metadata) into ctx, as the stats handler does; a call without
// them is left as it is.
func (o *observability) continueTrace(ctx context.Context) context.Context {
	if metadata.ValueFromIncomingContext(ctx, "traceparent") == nil && metadata.ValueFromIncomingContext(ctx, "baggage") == nil {
		return ctx
	}
	md, _ := metadata.FromIncomingContext(ctx)
	return o.propagator.Extract(ctx, metadataCarrier(md))
}

// traceUnary and traceStream are the interceptors that continue callers'
// traces when tracing is off; nil when it is on (the stats handler does).
func (o *observability) traceUnary() grpc.UnaryServerInterceptor {
	if o.tracing() {
		return nil
	}
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return h(o.continueTrace(ctx), req)
	}
}

func (o *observability) traceStream() grpc.StreamServerInterceptor {
	if o.tracing() {
		return nil
	}
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if ctx := o.continueTrace(ss.Context()); ctx != ss.Context() {
			ss = &contextStream{ServerStream: ss, ctx: ctx}
		}
		return h(srv, ss)
	}
}

// contextStream is a server stream with another context.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }

// statsHandler traces every RPC but health checks. It continues a trace
// from the caller's metadata (W3C traceparent) or starts one.
func (o *observability) statsHandler() stats.Handler {
	return otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(o.tp),
		otelgrpc.WithPropagators(o.propagator),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()), // metrics come from Prometheus
		otelgrpc.WithFilter(filters.Not(filters.HealthCheck())),
	)
}

// traceREST gives each REST call an HTTP server span, continuing the
// client's trace from its traceparent header.
func (o *observability) traceREST(h http.Handler) http.Handler {
	return otelhttp.NewHandler(h, "rest",
		otelhttp.WithTracerProvider(o.tp),
		otelhttp.WithPropagators(o.propagator),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "HTTP " + r.Method }),
	)
}

// gatewayMetadata hands the REST call's trace context to the in-process
// gRPC call as metadata, where the stats handler picks it up.
func (o *observability) gatewayMetadata(ctx context.Context, _ *http.Request) metadata.MD {
	md := metadata.MD{}
	o.propagator.Inject(ctx, metadataCarrier(md))
	return md
}

// instrumentHTTP counts and times the requests of one public handler.
func (o *observability) instrumentHTTP(name string, h http.Handler) http.Handler {
	if o.httpCount == nil {
		return h
	}
	labels := prometheus.Labels{"handler": name}
	return promhttp.InstrumentHandlerCounter(o.httpCount.MustCurryWith(labels),
		promhttp.InstrumentHandlerDuration(o.httpTime.MustCurryWith(labels), h))
}

type metadataCarrier metadata.MD

func (c metadataCarrier) Get(key string) string {
	if v := metadata.MD(c).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c metadataCarrier) Set(key, value string) { metadata.MD(c).Set(key, value) }

func (c metadataCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// chainUnary composes interceptors, skipping nil ones (for the in-process
// channel, which takes only one): the first is outermost, as in
// grpc.ChainUnaryInterceptor.
func chainUnary(ics ...grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	ics = nonNil(ics...)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		next := h
		for i := len(ics) - 1; i >= 0; i-- {
			ic, inner := ics[i], next
			next = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, inner) }
		}
		return next(ctx, req)
	}
}

// nonNil returns the interceptors that are set.
func nonNil[T grpc.UnaryServerInterceptor | grpc.StreamServerInterceptor](ics ...T) []T {
	return slices.DeleteFunc(ics, func(ic T) bool { return ic == nil })
}

// chainStream is chainUnary for streams.
func chainStream(ics ...grpc.StreamServerInterceptor) grpc.StreamServerInterceptor {
	ics = nonNil(ics...)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		next := h
		for i := len(ics) - 1; i >= 0; i-- {
			ic, inner := ics[i], next
			next = func(srv any, ss grpc.ServerStream) error { return ic(srv, ss, info, inner) }
		}
		return next(srv, ss)
	}
}

// readinessInterval is how often the gRPC health status is re-checked: a
// lost Redis shows as NOT_SERVING well within a second.
const readinessInterval = 250 * time.Millisecond
