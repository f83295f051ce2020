package api

import (
	"context"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// watchReadiness keeps the gRPC health status of the server and of every
// service in step with readiness (Redis reachable) until ctx is done; then
// Run's shutdown marks everything NOT_SERVING for good.
func (s *Server) watchReadiness(ctx context.Context) {
	t := time.NewTicker(readinessInterval)
	defer t.Stop()
	last := healthpb.HealthCheckResponse_UNKNOWN
	for {
		cctx, cancel := context.WithTimeout(ctx, readinessInterval*3)
		st := healthpb.HealthCheckResponse_SERVING
		if err := s.opts.Ready(cctx); err != nil {
			st = healthpb.HealthCheckResponse_NOT_SERVING
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		if st != last {
			s.health.SetServingStatus("", st)
			for name := range s.grpc.GetServiceInfo() {
				if name != healthpb.Health_ServiceDesc.ServiceName {
					s.health.SetServingStatus(name, st)
				}
			}
			switch {
			case st == healthpb.HealthCheckResponse_NOT_SERVING:
				s.opts.Logger.Warn("not ready: redis unreachable")
			case last != healthpb.HealthCheckResponse_UNKNOWN:
				s.opts.Logger.Info("ready again: redis reachable")
			}
			last = st
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
