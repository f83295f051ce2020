package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
)

// maxRecvBytes bounds one response: a full page of jobs with large
// payloads and results is bigger than gRPC's 4 MiB default.
const maxRecvBytes = 64 << 20

// Client is a connection to the jobforge API. It is safe for concurrent
// use; make one per process and share it. Close it when done.
type Client struct {
	conn *grpc.ClientConn
	jobs jobforgev1.JobServiceClient
}

// config is what the Options set.
type config struct {
	token    string
	creds    credentials.TransportCredentials
	timeout  time.Duration
	dialOpts []grpc.DialOption
}

// Option configures [Dial].
type Option func(*config)

// WithToken sends token, an API key (jfk_…) or a JWT, as
// `authorization: Bearer <token>` on every call. The token decides the
// tenant: a client sees only its tenant's jobs. An empty token sends none.
//
// The token is sent over plaintext connections too ([WithInsecure]), which
// a local development server uses; anywhere else use TLS.
func WithToken(token string) Option {
	return func(c *config) { c.token = token }
}

// WithTLS connects with TLS using cfg, e.g. to trust a private CA through
// cfg.RootCAs. A nil cfg verifies the server against the system roots,
// which is also what happens without any transport option.
func WithTLS(cfg *tls.Config) Option {
	return func(c *config) {
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		c.creds = credentials.NewTLS(cfg)
	}
}

// WithInsecure connects without TLS: for a development server on
// localhost or a connection inside a trusted network.
func WithInsecure() Option {
	return func(c *config) { c.creds = insecure.NewCredentials() }
}

// WithTimeout bounds every unary call (everything but [Client.Watch] and
// [Client.Wait], which last as long as the job) by d: a call's context gets
// a deadline d from its start, unless it already has an earlier one. 0 (the
// default) sets none; deadlines then come from the callers' contexts only.
func WithTimeout(d time.Duration) Option {
	return func(c *config) { c.timeout = d }
}

// WithDialOptions adds gRPC dial options, after the client's own (so they
// win): interceptors, telemetry handlers, a custom resolver, another user
// agent, per-RPC credentials that refresh a JWT.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(c *config) { c.dialOpts = append(c.dialOpts, opts...) }
}

// Dial returns a client of the jobforge API at target, a gRPC target such
// as "jobs.example.com:443" or "dns:///jobforge-api:9090".
//
// Dial does not wait for the server: it checks the options and returns;
// the connection is made in the background and re-made after it breaks,
// and a call made while it is down fails with [ErrUnavailable]. ctx is not
// kept.
//
// Without options the connection uses TLS verified against the system roots
// and sends no token.
func Dial(ctx context.Context, target string, opts ...Option) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.timeout < 0 {
		return nil, fmt.Errorf("client: negative timeout %s", cfg.timeout)
	}
	if cfg.creds == nil {
		WithTLS(nil)(&cfg)
	}
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(cfg.creds),
		grpc.WithUserAgent("jobforge-go-client"),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvBytes)),
		// Reconnect quickly after an API restart, so that a resumed watch
		// does not wait out gRPC's default backoff (up to two minutes).
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
		grpc.WithChainUnaryInterceptor(unaryTimeout(cfg.timeout), unaryErrors),
		grpc.WithChainStreamInterceptor(streamErrors),
	}
	if cfg.token != "" {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(bearer(cfg.token)))
	}
	conn, err := grpc.NewClient(target, append(dialOpts, cfg.dialOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("client: dial %q: %w", target, err)
	}
	return &Client{conn: conn, jobs: jobforgev1.NewJobServiceClient(conn)}, nil
}

// Close closes the connection. Calls in progress fail with
// [context.Canceled]; watches end.
func (c *Client) Close() error { return c.conn.Close() }

// Conn is the client's connection, for the services this package does not
// wrap (QueueService and ScheduleService, which need the admin scope):
//
//	queues := jobforgev1.NewQueueServiceClient(c.Conn())
//
// Calls made through it send the token, honour [WithTimeout] and return
// [*Error] values like the client's own.
func (c *Client) Conn() grpc.ClientConnInterface { return c.conn }

// bearer sends the token as `authorization: Bearer <token>` metadata. It is
// allowed over plaintext, which the local development server uses.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// unaryTimeout bounds each unary call by d (none when d is 0).
func unaryTimeout(d time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if d > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// unaryErrors turns the status errors of unary calls into *Error.
func unaryErrors(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return convert(invoker(ctx, method, req, reply, cc, opts...))
}

// streamErrors turns the status errors of streams into *Error.
func streamErrors(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, convert(err)
	}
	return errStream{s}, nil
}

type errStream struct{ grpc.ClientStream }

func (s errStream) SendMsg(m any) error { return convert(s.ClientStream.SendMsg(m)) }
func (s errStream) RecvMsg(m any) error { return convert(s.ClientStream.RecvMsg(m)) }
