package api_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/api"
	"github.com/jobforge/jobforge/internal/queue"
	"github.com/jobforge/jobforge/internal/redistest"
	"github.com/jobforge/jobforge/internal/telemetry"
)

// BenchmarkBatchCreateJobs sends batches of 100 minimal jobs over gRPC to
// an API server in this process (its interceptors: validation, RPC
// metrics, the audit line; no authentication) on a redis-server of its own: the API's and its client's
// work per batch, and their allocations, without the machine's other
// processes in the figure (Redis's share is its wait, not its CPU).
func BenchmarkBatchCreateJobs(b *testing.B) {
	s := newStack(b, redistest.NewServer(b).URL(0), queue.StoreOptions{MaxWaitingPerTenant: 1 << 30})
	srv := s.serve(b, api.Options{Metrics: telemetry.NewRegistry()})
	client := jobforgev1.NewJobServiceClient(dial(b, srv.GRPCAddr()))
	req := &jobforgev1.BatchCreateJobsRequest{}
	for range 100 {
		req.Requests = append(req.Requests, &jobforgev1.CreateJobRequest{
			Job: &jobforgev1.Job{Type: "simulate", Payload: &structpb.Struct{}},
		})
	}
	ctx := context.Background()
	b.ReportAllocs()
	before := processCPU(b)
	for b.Loop() {
		resp, err := client.BatchCreateJobs(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		if e := resp.GetResults()[99].GetError(); e != nil {
			b.Fatal(e)
		}
	}
	b.ReportMetric(float64((processCPU(b)-before).Nanoseconds())/float64(b.N*len(req.Requests))/1e3, "cpu-µs/job")
}

// BenchmarkCreateJob sends minimal CreateJob calls over gRPC from 64
// goroutines to an API server in this process on a redis-server of its
// own, like B1 at c=64: the API's and its client's work per create, and
// their allocations.
func BenchmarkCreateJob(b *testing.B) {
	s := newStack(b, redistest.NewServer(b).URL(0), queue.StoreOptions{MaxWaitingPerTenant: 1 << 30})
	srv := s.serve(b, api.Options{Metrics: telemetry.NewRegistry()})
	client := jobforgev1.NewJobServiceClient(dial(b, srv.GRPCAddr()))
	req := &jobforgev1.CreateJobRequest{Job: &jobforgev1.Job{Type: "simulate", Payload: &structpb.Struct{}}}
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(32) // 64 goroutines on 2 cores
	before := processCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := client.CreateJob(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64((processCPU(b)-before).Nanoseconds())/float64(b.N)/1e3, "cpu-µs/job")
}

// processCPU is the CPU time this process used so far (user and system):
// the API server's and its client's.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
