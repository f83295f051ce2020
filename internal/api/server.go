package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	apidef "github.com/jobforge/jobforge/api"
	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/auth"
)

// Options configures a Server.
type Options struct {
	GRPCAddr string
	HTTPAddr string
	// DrainDelay is how long the server keeps serving after readiness turns
	// off, so load balancers stop sending traffic before listeners close.
	DrainDelay time.Duration
	// ShutdownTimeout bounds how long in-flight requests may take to finish.
	ShutdownTimeout time.Duration
	// Ready reports whether dependencies (Redis) are reachable.
	Ready func(ctx context.Context) error
	// Auth authenticates callers; nil disables authentication (every
	// caller is "anonymous" with full access to the default tenant).
	Auth *auth.Authenticator
	// Limiter and Limits rate-limit callers; a nil Limiter disables it.
	Limiter RateLimiter
	Limits  Limits
	// MaxBodyBytes caps REST request bodies (DefaultMaxBodyBytes if 0).
	MaxBodyBytes int64
	// TLSConfig, when set, serves gRPC and HTTP over TLS.
	TLSConfig *tls.Config
	Logger    *slog.Logger
	// QueueService and ScheduleService are served next to the JobService
	// (over gRPC and REST) when set.
	QueueService    jobforgev1.QueueServiceServer
	ScheduleService jobforgev1.ScheduleServiceServer
	// Metrics, when set, gets the RPC metrics of both transports (label
	// transport="grpc" or "http") and the public port's HTTP metrics.
	Metrics prometheus.Registerer
	// TracerProvider traces requests; nil records no spans (trace context
	// still flows from callers into jobs).
	TracerProvider trace.TracerProvider
	// Monitoring is the queue UI, mounted at /monitoring when set.
	Monitoring http.Handler
}

// Server serves the JobService over gRPC and REST, plus /healthz, /readyz
// and /openapi.json on the HTTP port.
type Server struct {
	opts     Options
	grpc     *grpc.Server
	http     *http.Server
	health   *health.Server
	grpcLis  net.Listener
	httpLis  net.Listener
	stopping atomic.Bool
	unused   unusedConns
}

// streamWorkers is the size of the gRPC server's goroutine pool: the
// concurrent requests a busy API sees from its clients.
const streamWorkers = 64

// NewServer binds the listeners and wires the service. The REST gateway
// calls the service through an in-process channel that runs the same
// interceptor chain as the gRPC server, without a network hop.
func NewServer(opts Options, svc jobforgev1.JobServiceServer) (*Server, error) {
	ic, err := newInterceptors(opts)
	if err != nil {
		return nil, err
	}
	obs, err := newObservability(opts.Metrics, opts.TracerProvider)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, health: health.NewServer()}

	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	grpcOpts := append(obs.serverOptions(),
		grpc.ChainUnaryInterceptor(nonNil(obs.traceUnary(), obs.unary(transportGRPC), ic.unary)...),
		grpc.ChainStreamInterceptor(nonNil(obs.traceStream(), obs.stream(transportGRPC), ic.stream)...),
		grpc.MaxRecvMsgSize(int(opts.MaxBodyBytes)),
		grpc.MaxHeaderListSize(64<<10),
		grpc.ConnectionTimeout(10*time.Second),
		// A pool of goroutines serves the streams (a new one only when all
		// are busy): their stacks stay grown, whereas a goroutine per
		// request grows its stack from scratch every time — ~10 % of the
		// API's CPU under create load (docs/benchmarks.md).
		grpc.NumStreamWorkers(streamWorkers),
	)
	if opts.TLSConfig != nil {
		grpcOpts = append(grpcOpts, grpc.Creds(credentials.NewTLS(opts.TLSConfig)))
	}
	s.grpc = grpc.NewServer(grpcOpts...)
	jobforgev1.RegisterJobServiceServer(s.grpc, svc)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)

	var sh stats.Handler
	if obs.tracing() {
		sh = obs.statsHandler()
	}
	conn := newInprocConn(chainUnary(obs.traceUnary(), obs.unary(transportHTTP), ic.unary),
		chainStream(obs.traceStream(), obs.stream(transportHTTP), ic.stream), sh)
	jobforgev1.RegisterJobServiceServer(conn, svc)
	for _, r := range []grpc.ServiceRegistrar{s.grpc, conn} {
		if opts.QueueService != nil {
			jobforgev1.RegisterQueueServiceServer(r, opts.QueueService)
		}
		if opts.ScheduleService != nil {
			jobforgev1.RegisterScheduleServiceServer(r, opts.ScheduleService)
		}
	}

	// REST calls go through conn, not the bare channel: unary calls run on
	// the caller's goroutine, and a refusal must reach the client as itself,
	// not as a 500 (see inprocConn).
	gw, err := newGateway(conn, opts, obs)
	if err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	mux.Handle("/v1/", obs.instrumentHTTP("api", obs.traceREST(
		withBearerChallenge(guardBody(withEventStream(gw, jobforgev1.NewJobServiceClient(conn), obs.gatewayMetadata, opts.Logger), opts.MaxBodyBytes)))))
	s.mountOperability(mux, obs)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /{$}", s.index)
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(apidef.OpenAPI)
	})
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
		ConnState:         s.unused.track,
	}

	if s.grpcLis, err = net.Listen("tcp", opts.GRPCAddr); err != nil {
		return nil, fmt.Errorf("listen grpc: %w", err)
	}
	if s.httpLis, err = net.Listen("tcp", opts.HTTPAddr); err != nil {
		_ = s.grpcLis.Close()
		return nil, fmt.Errorf("listen http: %w", err)
	}
	restURL := "http://" + s.httpLis.Addr().String()
	if opts.TLSConfig != nil {
		s.httpLis = tls.NewListener(s.httpLis, opts.TLSConfig)
		restURL = "https://" + s.httpLis.Addr().String()
	}
	s.grpcLis = newHTTP1Listener(s.grpcLis, restURL, s.grpcLis.Addr().String())
	return s, nil
}

// idempotencyKeyHeader carries CreateJob's idempotency key over REST.
const idempotencyKeyHeader = "idempotency-key"

// incomingHeader forwards the request id and idempotency key; other headers
// stay HTTP-only (the gateway's default would also trust client-sent
// Grpc-Metadata-* headers).
func incomingHeader(key string) (string, bool) {
	switch {
	case strings.EqualFold(key, requestIDHeader):
		return requestIDHeader, true
	case strings.EqualFold(key, idempotencyKeyHeader):
		return idempotencyKeyHeader, true
	case strings.EqualFold(key, "Authorization"):
		return "authorization", true
	}
	return "", false
}

func outgoingHeader(key string) (string, bool) {
	if strings.EqualFold(key, requestIDHeader) {
		return textproto.CanonicalMIMEHeaderKey(requestIDHeader), true
	}
	return "", false
}

// GRPCAddr is the bound gRPC address.
func (s *Server) GRPCAddr() string { return s.grpcLis.Addr().String() }

// HTTPAddr is the bound HTTP address.
func (s *Server) HTTPAddr() string { return s.httpLis.Addr().String() }

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.stopping.Load() {
		http.Error(w, "shutting down\n", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	if err := s.opts.Ready(ctx); err != nil {
		http.Error(w, "redis unreachable\n", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// Run serves until ctx is done, then shuts down in order: readiness off,
// drain delay, close connections that sent no request (unusedConns), stop
// accepting and finish in-flight requests, return.
func (s *Server) Run(ctx context.Context) error {
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(jobforgev1.JobService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { s.watchReadiness(gctx); return nil })
	g.Go(func() error {
		if err := s.grpc.Serve(s.grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("serve grpc: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := s.http.Serve(s.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		s.stopping.Store(true)
		s.health.Shutdown() // every service reports NOT_SERVING
		if s.opts.DrainDelay > 0 && ctx.Err() != nil {
			s.opts.Logger.Info("readiness off; draining", "delay", s.opts.DrainDelay)
			time.Sleep(s.opts.DrainDelay)
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.ShutdownTimeout)
		defer cancel()
		s.unused.closeAll()
		httpErr := s.http.Shutdown(sctx)
		done := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-sctx.Done():
			s.grpc.Stop()
			<-done
		}
		return httpErr
	})
	return g.Wait()
}

// unusedConns are the HTTP connections that have not sent a request yet
// (http.StateNew), which the server closes when it shuts down; connections
// that reach StateNew after that are closed at once.
//
// Why: http.Server.Shutdown counts such a connection as active until it is
// over 5 s old (golang/go#22682), so a single connection that a client
// opened and never used made every shutdown wait 5-6 s, and fail with
// ShutdownTimeout at or below that, gRPC then being stopped hard. Clients
// leave such connections routinely: Go's http.Transport dials one per
// request waiting for a connection and keeps the ones that finish dialling
// after another connection took the request; browsers preconnect; load
// balancers probe. By the time the server shuts down, readiness has been
// off for DrainDelay and new connections are refused; a request being
// written at that instant on a connection closed here fails with a
// connection error, as it would on an idle keep-alive connection, which
// Shutdown closes the same way.
type unusedConns struct {
	mu      sync.Mutex
	closing bool
	conns   map[net.Conn]struct{}
}

// track is the http.Server's ConnState hook.
func (u *unusedConns) track(c net.Conn, st http.ConnState) {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case st != http.StateNew:
		delete(u.conns, c)
	case u.closing:
		_ = c.Close()
	default:
		if u.conns == nil {
			u.conns = map[net.Conn]struct{}{}
		}
		u.conns[c] = struct{}{}
	}
}

// closeAll closes the connections without a request, and from now on each
// new one as it arrives.
func (u *unusedConns) closeAll() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closing = true
	for c := range u.conns {
		_ = c.Close()
	}
	clear(u.conns)
}

// httpErrorHandler is the gateway's error rendering plus the HTTP headers
// clients expect: Retry-After on 429/503 (from RetryInfo) and
// WWW-Authenticate on 401.
func httpErrorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	var hse *runtime.HTTPStatusError
	if errors.As(err, &hse) {
		err = hse.Err
	}
	if st := status.Convert(err); st.Code() == codes.InvalidArgument && len(st.Details()) == 0 {
		// The gateway's own decoding error: report it per field.
		if vs := decodeViolations(ctx, r); len(vs) > 0 {
			err = invalidArgument(vs...)
		}
	}
	st := withErrorInfo(status.Convert(err))
	err = st.Err()
	if hse != nil {
		// Keep the gateway's own HTTP status (e.g. 405).
		err = &runtime.HTTPStatusError{HTTPStatus: hse.HTTPStatus, Err: err}
	}
	setRetryAfter(w, st)
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

// setRetryAfter sets Retry-After from the status's RetryInfo, if any.
func setRetryAfter(w http.ResponseWriter, st *status.Status) {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			secs := int(math.Ceil(ri.GetRetryDelay().AsDuration().Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		}
	}
}

// withBearerChallenge sets the RFC 6750 challenge on every 401 of the REST
// API: unary calls, NDJSON and SSE watches alike. (The gateway's default
// error handler puts the error message in WWW-Authenticate; this replaces
// it with the scheme.)
func withBearerChallenge(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&bearerChallenge{ResponseWriter: w}, r)
	})
}

type bearerChallenge struct{ http.ResponseWriter }

func (b *bearerChallenge) WriteHeader(code int) {
	if code == http.StatusUnauthorized {
		b.Header().Set("WWW-Authenticate", `Bearer realm="jobforge"`)
	}
	b.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer (Flush).
func (b *bearerChallenge) Unwrap() http.ResponseWriter { return b.ResponseWriter }
