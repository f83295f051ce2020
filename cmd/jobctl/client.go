package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
)

// maxRecvBytes bounds one response: a full page of jobs with large payloads
// and results is bigger than gRPC's 4 MiB default.
const maxRecvBytes = 64 << 20

// client holds the connection and the service stubs.
type client struct {
	conn      *grpc.ClientConn
	jobs      jobforgev1.JobServiceClient
	queues    jobforgev1.QueueServiceClient
	schedules jobforgev1.ScheduleServiceClient
}

func (c *client) Close() error { return c.conn.Close() }

// dial connects to o.addr with the resolved token and transport security.
// The connection is made lazily, on the first call.
func (o *options) dial() (*client, error) {
	token, err := o.resolveToken()
	if err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if o.tls {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if o.caFile != "" {
			pem, err := os.ReadFile(o.caFile)
			if err != nil {
				return nil, fmt.Errorf("--ca-file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--ca-file %s: no PEM certificates found", o.caFile)
			}
			cfg.RootCAs = pool
		}
		creds = credentials.NewTLS(cfg)
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithUserAgent("jobctl"),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvBytes)),
		// Reconnect quickly after an API restart, so a resumed watch does
		// not wait out gRPC's default backoff (up to two minutes).
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(token)))
	}
	conn, err := grpc.NewClient(o.addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("--addr %q: %w", o.addr, err)
	}
	return &client{
		conn:      conn,
		jobs:      jobforgev1.NewJobServiceClient(conn),
		queues:    jobforgev1.NewQueueServiceClient(conn),
		schedules: jobforgev1.NewScheduleServiceClient(conn),
	}, nil
}

// resolveToken picks the bearer token: --token (even when empty: an explicit
// "no token"), then JOBFORGE_TOKEN, then devKeyFile in the current directory.
func (o *options) resolveToken() (string, error) {
	if o.tokenSource == "--token" {
		return strings.TrimSpace(o.token), nil
	}
	if v := strings.TrimSpace(o.getenv("JOBFORGE_TOKEN")); v != "" {
		o.tokenSource = "JOBFORGE_TOKEN"
		return v, nil
	}
	b, err := os.ReadFile(devKeyFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("read %s: %w", devKeyFile, err)
	}
	if v := strings.TrimSpace(string(b)); v != "" {
		o.tokenSource = devKeyFile
		return v, nil
	}
	return "", nil
}

// bearer sends the token as `authorization: Bearer <token>` metadata. It
// is allowed over plaintext connections, which the local development
// server uses; use --tls for anything else.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// callCtx bounds one unary call by --timeout.
// connect dials the API and returns the client with a context bounded by
// --timeout; done closes both.
func (o *options) connect(ctx context.Context) (*client, context.Context, func(), error) {
	c, err := o.dial()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := o.callCtx(ctx)
	return c, ctx, func() { cancel(); _ = c.Close() }, nil
}

func (o *options) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if o.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, o.timeout)
}
