package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/config"
	"github.com/jobforge/jobforge/internal/queue"
	"github.com/jobforge/jobforge/internal/remote"
)

// startWorkerProtocol serves WorkerService on cfg.WorkerProtocolAddr, when
// set, until ctx is done, in g, and returns the address it listens on.
// On shutdown every connection ends first, which gives its running jobs
// back to their queues, then the gRPC server stops.
func startWorkerProtocol(ctx context.Context, g *errgroup.Group, cfg config.Config, log *slog.Logger, rdb queue.Client, obs *observability) (string, error) {
	if cfg.WorkerProtocolAddr == "" {
		return "", nil
	}
	authn, _, err := authenticator(ctx, cfg, log)
	if err != nil {
		return "", err
	}
	if authn == nil {
		return "", errors.New("the worker protocol needs credentials (-api-keys-file or -jwt-jwks)")
	}
	lis, err := net.Listen("tcp", cfg.WorkerProtocolAddr)
	if err != nil {
		return "", fmt.Errorf("worker protocol: %w", err)
	}
	log = log.With("component", "worker-protocol")
	srv := remote.NewServer(remote.Options{Redis: rdb, Worker: workerOptions(cfg, log, obs), Logger: log})
	gs := grpc.NewServer(grpc.ChainStreamInterceptor(remote.AuthInterceptor(authn)))
	jobforgev1.RegisterWorkerServiceServer(gs, srv)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	g.Go(func() error { return gs.Serve(lis) })
	g.Go(func() error {
		<-ctx.Done()
		hs.Shutdown()
		srv.Shutdown()
		gs.GracefulStop()
		return nil
	})
	return lis.Addr().String(), nil
}
