package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"runtime/debug"
	"time"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"buf.build/go/protovalidate"

	"github.com/jobforge/jobforge/internal/auth"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// requestIDHeader carries a request id from the client (or the gateway) and
// back in the response headers.
const requestIDHeader = "x-request-id"

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

type requestIDKey struct{}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// interceptors is the single chain every call goes through, over gRPC and
// over the REST gateway alike: request id → recovery → authentication,
// scope and rate limit → validation → handler → error mapping → access log.
type interceptors struct {
	log       *slog.Logger
	validator protovalidate.Validator
	auth      *auth.Authenticator // nil: authentication disabled
	limiter   RateLimiter         // nil: no rate limits
	limits    Limits
}

func newInterceptors(opts Options) (*interceptors, error) {
	v, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("build validator: %w", err)
	}
	return &interceptors{log: opts.Logger, validator: v, auth: opts.Auth, limiter: opts.Limiter, limits: opts.Limits}, nil
}

func (i *interceptors) begin(ctx context.Context) context.Context {
	id := ""
	if v := metadata.ValueFromIncomingContext(ctx, requestIDHeader); len(v) > 0 && validRequestID.MatchString(v[0]) {
		id = v[0]
	}
	if id == "" {
		id = newRequestID()
	}
	_ = grpc.SetHeader(ctx, metadata.MD{requestIDHeader: {id}}) // the key is lower case already: no Pairs
	return context.WithValue(ctx, requestIDKey{}, id)
}

func (i *interceptors) finish(ctx context.Context, method string, start time.Time, err error) error {
	if err = toStatus(ctx, i.log, method, err); err != nil {
		err = withErrorInfo(status.Convert(err)).Err()
	}
	code := status.Code(err)
	level := slog.LevelDebug
	if code == codes.Internal || code == codes.Unknown {
		level = slog.LevelError
	}
	if i.log.Enabled(ctx, level) { // the arguments alone cost a request half a dozen allocations
		i.log.Log(ctx, level, "rpc", "method", method, "code", code.String(),
			"duration", time.Since(start), "request_id", requestID(ctx))
	}
	return err
}

func (i *interceptors) validate(req any) error {
	m, ok := req.(proto.Message)
	if !ok {
		return nil
	}
	coercePageSize(m)
	err := i.validator.Validate(m)
	if err == nil {
		return nil
	}
	var ve *protovalidate.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("validate request: %w", err)
	}
	vs := make([]*fieldViolation, 0, len(ve.Violations))
	for _, v := range ve.Violations {
		vs = append(vs, violation(protovalidate.FieldPathString(v.Proto.GetField()), "%s", v.Proto.GetMessage()))
	}
	return invalidArgument(vs...)
}

// coercePageSize lowers a page_size above the request's maximum to that
// maximum, as AIP-158 asks (a client asking for more than a page holds gets
// a full page, not an error). The maximum is the field's own validation
// rule (buf.validate int32.lte), so the proto stays its one source.
func coercePageSize(m proto.Message) {
	r := m.ProtoReflect()
	fd := r.Descriptor().Fields().ByName("page_size")
	if fd == nil || fd.Kind() != protoreflect.Int32Kind || fd.IsList() {
		return
	}
	rules, _ := proto.GetExtension(fd.Options(), validate.E_Field).(*validate.FieldRules)
	if limit := rules.GetInt32(); limit.HasLte() && int32(r.Get(fd).Int()) > limit.GetLte() {
		r.Set(fd, protoreflect.ValueOfInt32(limit.GetLte()))
	}
}

func (i *interceptors) recover(ctx context.Context, method string, err *error) {
	if r := recover(); r != nil {
		i.log.ErrorContext(ctx, "panic in handler", "method", method, "panic", fmt.Sprint(r),
			"stack", string(debug.Stack()), "request_id", requestID(ctx))
		*err = fmt.Errorf("panic: %v", r)
	}
}

func (i *interceptors) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	ctx = i.begin(ctx)
	defer func() { err = i.finish(ctx, info.FullMethod, start, err) }()
	defer i.recover(ctx, info.FullMethod, &err)
	if ctx, err = i.guard(ctx, info.FullMethod, req); err != nil {
		return nil, err
	}
	if err := i.validate(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (i *interceptors) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	start := time.Now()
	ctx := i.begin(ss.Context())
	defer func() { err = i.finish(ctx, info.FullMethod, start, err) }()
	defer i.recover(ctx, info.FullMethod, &err)
	if ctx, err = i.guard(ctx, info.FullMethod, nil); err != nil {
		return err
	}
	return handler(srv, &validatingStream{ServerStream: ss, ctx: ctx, i: i})
}

// validatingStream validates every message a client sends on a stream.
type validatingStream struct {
	grpc.ServerStream
	ctx context.Context
	i   *interceptors
}

func (s *validatingStream) Context() context.Context { return s.ctx }

func (s *validatingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.i.validate(m)
}
