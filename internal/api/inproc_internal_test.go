package api

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
)

// A watch the server refuses before reading the request (as guard does
// without credentials) reports the refusal, also when the server has ended
// the call before the client hands the request over — what a loaded
// machine does now and then to the REST gateway, made certain here by
// serverEndsFirst. inprocgrpc then picks at random between "request
// handed over" and "server gone" (io.EOF), so a hundred calls would all
// have to be lucky for a regression to pass.
func TestInprocRefusalBeforeRequest(t *testing.T) {
	t.Parallel()
	conn := newInprocConn(nil, func(any, grpc.ServerStream, *grpc.StreamServerInfo, grpc.StreamHandler) error {
		return status.Error(codes.Unauthenticated, "missing credentials")
	}, nil)
	jobforgev1.RegisterJobServiceServer(conn, jobforgev1.UnimplementedJobServiceServer{})
	client := jobforgev1.NewJobServiceClient(serverEndsFirst{conn})

	for range 100 {
		stream, err := client.WatchJob(t.Context(), &jobforgev1.WatchJobRequest{Name: "jobs/j1"})
		require.NoError(t, err, "the refusal comes from Recv, not from sending the request")
		_, err = stream.Recv()
		require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	}
}

// serverEndsFirst opens a stream and waits until the server has ended the
// call before the caller sends its request: Header returns with the
// server's first frame, which inprocgrpc sends after marking the call done.
type serverEndsFirst struct{ grpc.ClientConnInterface }

func (c serverEndsFirst) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := c.ClientConnInterface.NewStream(ctx, desc, method, opts...)
	if err != nil {
		return nil, err
	}
	if _, err := cs.Header(); err != nil {
		return nil, err
	}
	return cs, nil
}

// echoJobs answers GetJob with what its call looked like on the server side.
type echoJobs struct {
	jobforgev1.UnimplementedJobServiceServer
}

type callerKey struct{}

func (echoJobs) GetJob(ctx context.Context, req *jobforgev1.GetJobRequest) (*jobforgev1.Job, error) {
	if req.GetName() == "jobs/missing" {
		return nil, status.Error(codes.NotFound, "no such job")
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-request-id", "r1"))
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t1"))
	md, _ := metadata.FromIncomingContext(ctx)
	p, _ := peer.FromContext(ctx)
	_, hasDeadline := ctx.Deadline()
	labels := map[string]string{
		"method":       grpc.ServerTransportStreamFromContext(ctx).Method(),
		"metadata":     strings.Join(md.Get("authorization"), ","),
		"peer":         p.Addr.Network(),
		"deadline":     strconv.FormatBool(hasDeadline),
		"caller_value": fmt.Sprint(ctx.Value(callerKey{})),
	}
	req.Name = "changed by the server" // the caller's request must not change
	return &jobforgev1.Job{Name: "jobs/j1", Labels: labels}, nil
}

// noopStats is a stats handler that records nothing: with one, every call
// goes through the channel.
type noopStats struct{}

func (noopStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (noopStats) HandleRPC(context.Context, stats.RPCStats)                         {}
func (noopStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (noopStats) HandleConn(context.Context, stats.ConnStats)                       {}

// A unary call through inprocConn runs on the calling goroutine with the
// channel's semantics; with a stats handler it goes through the channel.
// Both must answer alike.
func TestInprocUnary(t *testing.T) {
	t.Parallel()
	var intercepted []string
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		intercepted = append(intercepted, info.FullMethod)
		return h(ctx, req)
	}
	for _, tc := range []struct {
		name   string
		stats  stats.Handler
		direct bool
	}{
		{name: "direct", direct: true},
		{name: "channel", stats: noopStats{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			intercepted = nil
			conn := newInprocConn(unary, nil, tc.stats)
			jobforgev1.RegisterJobServiceServer(conn, echoJobs{})
			require.Equal(t, tc.direct, conn.unary != nil)
			client := jobforgev1.NewJobServiceClient(conn)

			ctx, cancel := context.WithTimeout(context.WithValue(t.Context(), callerKey{}, "secret"), time.Minute)
			defer cancel()
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer k")
			req := &jobforgev1.GetJobRequest{Name: "jobs/j1"}
			var header, trailer metadata.MD
			var p peer.Peer
			j, err := client.GetJob(ctx, req, grpc.Header(&header), grpc.Trailer(&trailer), grpc.Peer(&p))
			require.NoError(t, err)
			require.Equal(t, map[string]string{
				"method":       "/jobforge.v1.JobService/GetJob",
				"metadata":     "Bearer k",
				"peer":         "inproc",
				"deadline":     "true",
				"caller_value": "<nil>",
			}, j.GetLabels())
			require.Equal(t, "jobs/j1", req.GetName(), "the server got a copy of the request")
			require.Equal(t, []string{"r1"}, header.Get("x-request-id"))
			require.Equal(t, []string{"t1"}, trailer.Get("x-trailer"))
			require.Equal(t, "inproc", p.Addr.Network())
			require.Equal(t, []string{"/jobforge.v1.JobService/GetJob"}, intercepted)

			_, err = client.GetJob(ctx, &jobforgev1.GetJobRequest{Name: "jobs/missing"})
			require.Equal(t, codes.NotFound, status.Code(err), "%v", err)

			cctx, cancel := context.WithCancel(t.Context())
			cancel()
			_, err = client.GetJob(cctx, &jobforgev1.GetJobRequest{Name: "jobs/j1"})
			if tc.direct { // the handler sees the caller's cancellation (this one ignores it)
				require.NoError(t, err)
			} else {
				require.Equal(t, codes.Canceled, status.Code(err), "%v", err)
			}
		})
	}
}
