// Package remote serves the worker protocol (jobforge.v1.WorkerService):
// workers in any language connect over one gRPC stream, declare the job
// types they run, and take jobs.
//
// Each connection is run by its own queue.Worker, the same runtime that
// runs Go handlers, whose handlers forward each attempt to the connection
// and wait for its outcome. Everything that runtime guarantees therefore
// holds for remote workers as it does for Go ones: the task is leased and
// its lease extended while the attempt runs, outcomes and progress are
// fenced by the worker that holds the job, timeouts, retry policies and
// cancellation apply, metrics and traces are recorded, and the types join
// the catalogue. A connection that ends (closed, broken, or silent for
// three heartbeat intervals) shuts its queue.Worker down at once, which
// puts its running jobs back in their queues without using up an attempt,
// as a Go worker's SIGTERM does. If this process dies, its heartbeats stop
// and the recovery loop of any worker gives the jobs back within seconds.
//
// Backpressure is the runtime's: the connection's worker has max_jobs
// slots, so a remote worker never holds more jobs than it asked for.
package remote

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/auth"
	"github.com/jobforge/jobforge/internal/queue"
)

// Options configure a Server.
type Options struct {
	// Redis is the store the connections' workers run against.
	Redis queue.Client
	// Worker is the template of each connection's queue.Worker: polling,
	// recovery, retention, logger, metrics and tracing. Pools, ID and
	// ShutdownTimeout are set per connection.
	Worker queue.WorkerOptions
	// HeartbeatInterval is how often a remote worker must send a message
	// (default 1 s); one silent for three intervals is gone.
	HeartbeatInterval time.Duration
	Logger            *slog.Logger
}

// Server implements jobforgev1.WorkerServiceServer.
type Server struct {
	jobforgev1.UnimplementedWorkerServiceServer
	opts Options
	host string
	// stop ends every connection (Shutdown).
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// NewServer returns a worker-protocol server.
func NewServer(opts Options) *Server {
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	host, _ := os.Hostname()
	ctx, stop := context.WithCancel(context.Background())
	return &Server{opts: opts, host: host, ctx: ctx, stop: stop}
}

// Shutdown ends every connection, giving their running jobs back to their
// queues, and waits until they have ended.
func (s *Server) Shutdown() {
	s.stop()
	s.wg.Wait()
}

// Work implements WorkerService.Work: one remote worker's connection.
func (s *Server) Work(stream grpc.BidiStreamingServer[jobforgev1.WorkRequest, jobforgev1.WorkResponse]) error {
	s.wg.Add(1)
	defer s.wg.Done()
	if s.ctx.Err() != nil {
		return status.Error(codes.Unavailable, "shutting down; connect to another worker")
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return invalid(&errdetails.BadRequest_FieldViolation{Field: "hello", Description: "the first message must be a hello"})
	}
	h, vs := parseHello(hello)
	if len(vs) > 0 {
		return invalid(vs...)
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel) // Shutdown ends the connection
	defer stop()

	id := fmt.Sprintf("%s@%s:%s", h.name, s.host, randomSuffix())
	c := newConn(ctx, stream, id, s.opts.Logger.With("remote_worker", id))
	reg, err := c.registry(h.types)
	if err != nil {
		return invalid(&errdetails.BadRequest_FieldViolation{Field: "hello.job_types", Description: err.Error()})
	}
	wopts := s.opts.Worker
	wopts.ID = id
	wopts.Pools = []queue.Pool{{Name: "remote", Queues: h.queues, Concurrency: h.maxJobs}}
	// A connection that ends has no one to finish its jobs: give them back
	// at once (asynq needs a positive timeout).
	wopts.ShutdownTimeout = time.Millisecond
	wopts.Logger = c.log
	w := queue.NewWorker(s.opts.Redis, reg, wopts)
	if err := c.send(&jobforgev1.WorkResponse{Message: &jobforgev1.WorkResponse_Welcome_{Welcome: &jobforgev1.WorkResponse_Welcome{
		WorkerId: id, HeartbeatInterval: durationpb.New(s.opts.HeartbeatInterval),
	}}}); err != nil {
		return err
	}
	if err := w.Start(); err != nil {
		c.log.Error("start remote worker", "error", err)
		return status.Error(codes.Unavailable, "cannot start taking jobs now; retry shortly")
	}
	c.log.Info("remote worker connected", "types", h.names(), "queues", h.queues, "max_jobs", h.maxJobs)
	err = c.serve(ctx, s.opts.HeartbeatInterval)
	cancel()
	w.Shutdown() // running jobs go back to their queues, attempts given back
	c.log.Info("remote worker disconnected", "reason", err)
	if errors.Is(err, errGone) || s.ctx.Err() != nil {
		return nil
	}
	return err
}

func randomSuffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func invalid(vs ...*errdetails.BadRequest_FieldViolation) error {
	msg := vs[0].GetField() + ": " + vs[0].GetDescription()
	if len(vs) > 1 {
		msg += fmt.Sprintf(" (and %d more)", len(vs)-1)
	}
	st, err := status.New(codes.InvalidArgument, msg).WithDetails(&errdetails.BadRequest{FieldViolations: vs})
	if err != nil {
		return status.Error(codes.InvalidArgument, msg)
	}
	return st.Err()
}

// AuthInterceptor authenticates each stream with the bearer credential in
// its metadata and requires the worker scope.
func AuthInterceptor(a *auth.Authenticator) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if info.FullMethod != jobforgev1.WorkerService_Work_FullMethodName {
			return handler(srv, ss) // health, reflection
		}
		md, _ := metadata.FromIncomingContext(ss.Context())
		header := ""
		if v := md.Get("authorization"); len(v) > 0 {
			header = v[0]
		}
		p, err := a.Authenticate(ss.Context(), header)
		if err != nil {
			return status.Error(codes.Unauthenticated, err.Error())
		}
		if !p.Allows(auth.ScopeWorker) {
			return status.Errorf(codes.PermissionDenied, "the credential lacks the %q scope", auth.ScopeWorker)
		}
		return handler(srv, &principalStream{ServerStream: ss, ctx: auth.WithPrincipal(ss.Context(), p)})
	}
}

type principalStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *principalStream) Context() context.Context { return s.ctx }

// typeName is what a job type may be called (as the API's job type rule).
var typeName = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,63}$`)
