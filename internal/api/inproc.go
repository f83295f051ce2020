package api

import (
	"context"
	"errors"
	"io"

	"github.com/fullstorydev/grpchan/inprocgrpc"
	"google.golang.org/grpc"
)

// inprocConn is the client side of the in-process channel that the REST
// gateway and the SSE handler call the services through, with grpc-go's
// contract for streams the client does not stream on (WatchJob):
// SendMsg never reports that the server has already ended the call, so the
// call's status reaches the caller through Header and RecvMsg.
//
// Why: inprocgrpc's SendMsg returns io.EOF when the server has finished
// before the request message was handed over, and the generated client
// (WatchJob) returns that io.EOF as the call's error. A stream interceptor
// that refuses a call before reading the request (no or bad credentials,
// missing scope, rate limit) finishes the server side at once, so whenever
// the REST request's goroutine was descheduled between NewStream and
// SendMsg (a loaded machine) the client got Unknown "EOF", i.e. HTTP 500,
// instead of the refusal (401, 403, 429). grpc-go's clientStream.SendMsg
// returns nil in that case for this very reason ("the generated code
// requires it"), and RecvMsg then returns the server's status.
type inprocConn struct{ *inprocgrpc.Channel }

// NewStream opens a stream on the channel; see inprocConn.
func (c inprocConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := c.Channel.NewStream(ctx, desc, method, opts...)
	if err != nil || desc.ClientStreams {
		return cs, err
	}
	return singleRequestStream{cs}, nil
}

// singleRequestStream is a stream whose client sends its one request.
type singleRequestStream struct{ grpc.ClientStream }

// SendMsg hands over the request; io.EOF (the server has ended the call)
// is not an error here: RecvMsg returns the call's status.
func (s singleRequestStream) SendMsg(m any) error {
	if err := s.ClientStream.SendMsg(m); !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
