package api

import (
	"context"
	"testing"

	"github.com/fullstorydev/grpchan/inprocgrpc"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
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
	ch := (&inprocgrpc.Channel{}).WithServerStreamInterceptor(
		func(any, grpc.ServerStream, *grpc.StreamServerInfo, grpc.StreamHandler) error {
			return status.Error(codes.Unauthenticated, "missing credentials")
		})
	jobforgev1.RegisterJobServiceServer(ch, jobforgev1.UnimplementedJobServiceServer{})
	client := jobforgev1.NewJobServiceClient(serverEndsFirst{inprocConn{ch}})

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
