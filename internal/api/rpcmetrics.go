package api

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// rpcMetrics are the RPC metrics of the gRPC server, the series of
// go-grpc-middleware's Prometheus provider (grpc_server_started_total,
// grpc_server_handled_total, grpc_server_handling_seconds,
// grpc_server_msg_received_total, grpc_server_msg_sent_total: the same
// names, help, labels and exemplars) plus a transport label.
//
// Written here rather than taken from the provider: it resolves each
// series from its label values on every event (five label lookups per
// unary call, with a slice of label values built for each), which cost a
// CreateJob about 6 % of the API's CPU at 64 concurrent callers. Here each
// method's series are resolved once, on its first call, and a call only
// increments them.
type rpcMetrics struct {
	started, handled, received, sent *prometheus.CounterVec
	seconds                          *prometheus.HistogramVec

	methods sync.Map // rpcKey -> *rpcSeries
}

// rpcKey names one method's series.
type rpcKey struct{ transport, typ, fullMethod string }

// rpcSeries are the series of one method on one transport.
type rpcSeries struct {
	started, received, sent prometheus.Counter
	seconds                 prometheus.Observer

	// handled by status code, resolved on the code's first use (so that
	// /metrics lists only the codes a method returned) from vec and the
	// other label values.
	handled   [codes.Unauthenticated + 1]atomic.Pointer[prometheus.Counter]
	vec       *prometheus.CounterVec
	labels    [3]string // grpc_type, grpc_service, grpc_method
	transport string
}

// gRPC types (the provider's grpc_type values).
const (
	rpcUnary        = "unary"
	rpcClientStream = "client_stream"
	rpcServerStream = "server_stream"
	rpcBidiStream   = "bidi_stream"
)

func newRPCMetrics(buckets []float64) *rpcMetrics {
	labels := []string{"grpc_type", "grpc_service", "grpc_method", "transport"}
	withCode := []string{"grpc_type", "grpc_service", "grpc_method", "grpc_code", "transport"}
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	return &rpcMetrics{
		started:  counter("grpc_server_started_total", "Total number of RPCs started on the server.", labels),
		handled:  counter("grpc_server_handled_total", "Total number of RPCs completed on the server, regardless of success or failure.", withCode),
		received: counter("grpc_server_msg_received_total", "Total number of RPC stream messages received on the server.", labels),
		sent:     counter("grpc_server_msg_sent_total", "Total number of gRPC stream messages sent by the server.", labels),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "grpc_server_handling_seconds",
			Help:    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
			Buckets: buckets,
		}, labels),
	}
}

// Describe implements prometheus.Collector.
func (m *rpcMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *rpcMetrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
}

func (m *rpcMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.started, m.handled, m.received, m.sent, m.seconds}
}

// series returns the series of a method, resolving them on its first call.
func (m *rpcMetrics) series(transport, typ, fullMethod string) *rpcSeries {
	key := rpcKey{transport, typ, fullMethod}
	if s, ok := m.methods.Load(key); ok {
		return s.(*rpcSeries)
	}
	service, method := "unknown", "unknown"
	if svc, meth, ok := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/"); ok {
		service, method = svc, meth
	}
	s := &rpcSeries{
		started:   m.started.WithLabelValues(typ, service, method, transport),
		received:  m.received.WithLabelValues(typ, service, method, transport),
		sent:      m.sent.WithLabelValues(typ, service, method, transport),
		seconds:   m.seconds.WithLabelValues(typ, service, method, transport),
		vec:       m.handled,
		labels:    [3]string{typ, service, method},
		transport: transport,
	}
	actual, _ := m.methods.LoadOrStore(key, s)
	return actual.(*rpcSeries)
}

// done records the end of a call: its status code and how long it took.
func (s *rpcSeries) done(err error, took time.Duration, ex prometheus.Labels) {
	st, ok := status.FromError(err)
	if !ok { // as the gRPC server does, context errors become their status
		st = status.FromContextError(err)
	}
	add(s.handledCounter(st.Code()), ex)
	if ex != nil {
		s.seconds.(prometheus.ExemplarObserver).ObserveWithExemplar(took.Seconds(), ex)
	} else {
		s.seconds.Observe(took.Seconds())
	}
}

func (s *rpcSeries) handledCounter(code codes.Code) prometheus.Counter {
	resolve := func() prometheus.Counter {
		return s.vec.WithLabelValues(s.labels[0], s.labels[1], s.labels[2], code.String(), s.transport)
	}
	if int(code) >= len(s.handled) {
		return resolve()
	}
	if p := s.handled[code].Load(); p != nil {
		return *p
	}
	c := resolve()
	s.handled[code].Store(&c)
	return c
}

// add counts one, with the exemplar if there is one.
func add(c prometheus.Counter, ex prometheus.Labels) {
	if ex != nil {
		c.(prometheus.ExemplarAdder).AddWithExemplar(1, ex)
		return
	}
	c.Inc()
}

// unary is the interceptor of unary calls on a transport: the request is a
// message received, the response (when there is one) a message sent.
func (m *rpcMetrics) unary(transport string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		start := time.Now()
		s := m.series(transport, rpcUnary, info.FullMethod)
		ex := exemplar(ctx)
		add(s.started, ex)
		add(s.received, ex)
		resp, err := h(ctx, req)
		if err == nil {
			add(s.sent, ex)
		}
		s.done(err, time.Since(start), ex)
		return resp, err
	}
}

// stream is the interceptor of streaming calls on a transport.
func (m *rpcMetrics) stream(transport string) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		start := time.Now()
		typ := rpcBidiStream
		switch {
		case info.IsClientStream && !info.IsServerStream:
			typ = rpcClientStream
		case !info.IsClientStream && info.IsServerStream:
			typ = rpcServerStream
		}
		s := m.series(transport, typ, info.FullMethod)
		ex := exemplar(ss.Context())
		add(s.started, ex)
		err := h(srv, &countedStream{ServerStream: ss, s: s, ex: ex})
		s.done(err, time.Since(start), ex)
		return err
	}
}

// countedStream counts a stream's messages.
type countedStream struct {
	grpc.ServerStream
	s  *rpcSeries
	ex prometheus.Labels
}

func (c *countedStream) SendMsg(msg any) error {
	err := c.ServerStream.SendMsg(msg)
	if err == nil {
		add(c.s.sent, c.ex)
	}
	return err
}

func (c *countedStream) RecvMsg(msg any) error {
	err := c.ServerStream.RecvMsg(msg)
	if err == nil {
		add(c.s.received, c.ex)
	}
	return err
}
