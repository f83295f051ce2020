package api

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/fullstorydev/grpchan/inprocgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// inprocConn is the client side of the in-process channel that the REST
// gateway and the SSE handler call the services through.
//
// Unary calls run the method's handler, behind the same interceptor chain,
// on the calling goroutine: inprocgrpc starts a goroutine per call, whose
// stack then grows through the interceptor chain from scratch every time
// (~7 % of the API's CPU per REST create, as it was over gRPC before the
// server's stream workers). The call keeps the channel's semantics: the
// handler gets a copy of the request, in a context without the caller's
// values but with its deadline and cancellation, its outgoing metadata as
// incoming metadata and an in-process peer; the caller gets a copy of the
// response and the headers and trailers the handler set. Streams, and every
// call when a stats handler traces RPCs (unary is nil), go to the channel.
//
// Streams the client does not stream on (WatchJob) follow grpc-go's
// contract: SendMsg never reports that the server has already ended the
// call, so the call's status reaches the caller through Header and RecvMsg.
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
type inprocConn struct {
	*inprocgrpc.Channel
	unary     map[string]unaryMethod // full method name → handler
	intercept grpc.UnaryServerInterceptor
}

type unaryMethod struct {
	srv     any
	handler grpc.MethodHandler
}

// newInprocConn returns a connection to a new channel with the given
// interceptors; sh, when not nil, traces every call on the channel.
func newInprocConn(unary grpc.UnaryServerInterceptor, stream grpc.StreamServerInterceptor, sh stats.Handler) *inprocConn {
	c := &inprocConn{
		Channel:   (&inprocgrpc.Channel{}).WithServerUnaryInterceptor(unary).WithServerStreamInterceptor(stream),
		intercept: unary,
	}
	if sh != nil {
		c.Channel = c.Channel.WithServerStatsHandler(sh)
	} else {
		c.unary = map[string]unaryMethod{}
	}
	return c
}

// RegisterService registers a service on the channel and, for direct
// calls, its unary methods.
func (c *inprocConn) RegisterService(sd *grpc.ServiceDesc, impl any) {
	c.Channel.RegisterService(sd, impl)
	if c.unary == nil {
		return
	}
	for _, m := range sd.Methods {
		c.unary["/"+sd.ServiceName+"/"+m.MethodName] = unaryMethod{srv: impl, handler: m.Handler}
	}
}

// Invoke runs a unary call; see inprocConn.
func (c *inprocConn) Invoke(ctx context.Context, method string, req, reply any, opts ...grpc.CallOption) error {
	m, ok := c.unary[method]
	in, okIn := req.(proto.Message)
	out, okOut := reply.(proto.Message)
	if !ok || !okIn || !okOut {
		return c.Channel.Invoke(ctx, method, req, reply, opts...)
	}
	sts := &unaryTransportStream{method: method}
	sctx := serverContext{ctx}.with(sts)
	v, err := m.handler(m.srv, sctx, func(dst any) error {
		d, ok := dst.(proto.Message)
		if !ok {
			return status.Errorf(codes.Internal, "request message is %T, not a proto message", dst)
		}
		proto.Merge(d, in)
		return nil
	}, c.intercept)
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = sts.header
		case grpc.TrailerCallOption:
			*o.TrailerAddr = sts.trailer
		case grpc.PeerCallOption:
			*o.PeerAddr = *inprocPeer
		}
	}
	if err != nil {
		return err
	}
	resp, ok := v.(proto.Message)
	if !ok || resp == nil {
		return status.Errorf(codes.Internal, "handler of %s returned neither error nor response message", method)
	}
	proto.Merge(out, resp)
	return nil
}

// NewStream opens a stream on the channel; see inprocConn.
func (c *inprocConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
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

// inprocAddr and inprocPeer name the in-process caller, as inprocgrpc does.
type inprocAddr struct{}

func (inprocAddr) Network() string { return "inproc" }
func (inprocAddr) String() string  { return "0" }

var inprocPeer = &peer.Peer{Addr: inprocAddr{}}

// serverContext is a direct call's context on the server side: the caller's
// deadline and cancellation without its values (state of the REST layer
// must not leak into the service), as inprocgrpc's server contexts are.
type serverContext struct{ caller context.Context }

func (c serverContext) Deadline() (time.Time, bool) { return c.caller.Deadline() }
func (c serverContext) Done() <-chan struct{}       { return c.caller.Done() }
func (c serverContext) Err() error                  { return c.caller.Err() }
func (serverContext) Value(any) any                 { return nil }

// with adds the caller's outgoing metadata as incoming metadata, the
// in-process peer and the call's transport stream (grpc.SetHeader).
func (c serverContext) with(sts grpc.ServerTransportStream) context.Context {
	ctx := context.Context(c)
	if md, ok := metadata.FromOutgoingContext(c.caller); ok {
		ctx = metadata.NewIncomingContext(ctx, md)
	}
	ctx = peer.NewContext(ctx, inprocPeer)
	return grpc.NewContextWithServerTransportStream(ctx, sts)
}

// unaryTransportStream keeps the headers and trailers a direct call's
// handler sets, for the caller's grpc.Header and grpc.Trailer options.
type unaryTransportStream struct {
	method          string
	header, trailer metadata.MD
}

func (s *unaryTransportStream) Method() string { return s.method }

func (s *unaryTransportStream) SetHeader(md metadata.MD) error {
	s.header = metadata.Join(s.header, md)
	return nil
}

func (s *unaryTransportStream) SendHeader(md metadata.MD) error { return s.SetHeader(md) }

func (s *unaryTransportStream) SetTrailer(md metadata.MD) error {
	s.trailer = metadata.Join(s.trailer, md)
	return nil
}
