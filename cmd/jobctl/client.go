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

	"google.golang.org/grpc"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/client"
)

// dial returns a client of o.addr with the resolved token, transport
// security and --timeout as the deadline of each request (watches are not
// limited). The connection is made lazily, on the first call.
func (o *options) dial(ctx context.Context) (*client.Client, error) {
	token, err := o.resolveToken()
	if err != nil {
		return nil, err
	}
	opts := []client.Option{
		client.WithToken(token),
		client.WithTimeout(o.timeout),
		client.WithDialOptions(grpc.WithUserAgent("jobctl")),
	}
	if !o.tls {
		opts = append(opts, client.WithInsecure())
	} else {
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
		opts = append(opts, client.WithTLS(cfg))
	}
	c, err := client.Dial(ctx, o.addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("--addr %q: %w", o.addr, err)
	}
	return c, nil
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

// queues and schedules are the services the client package leaves to its
// connection.
func queues(c *client.Client) jobforgev1.QueueServiceClient {
	return jobforgev1.NewQueueServiceClient(c.Conn())
}

func schedules(c *client.Client) jobforgev1.ScheduleServiceClient {
	return jobforgev1.NewScheduleServiceClient(c.Conn())
}
