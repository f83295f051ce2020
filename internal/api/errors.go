package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/jobforge/jobforge/internal/store"
)

// errorDomain is the ErrorInfo domain of every error jobforge returns.
const errorDomain = "jobforge.dev"

// ErrorInfo reasons. Stable: clients may switch on them.
const (
	reasonInvalidArgument = "INVALID_ARGUMENT"
	reasonNotFound        = "JOB_NOT_FOUND"
	reasonBadState        = "JOB_STATE_CONFLICT"
	reasonIdempotency     = "IDEMPOTENCY_KEY_REUSED"
	reasonUnavailable     = "BACKEND_UNAVAILABLE"
	reasonNotReplicated   = "NOT_REPLICATED"
	reasonInternal        = "INTERNAL"
	// reasonInvalidSchema: the job type's published payload schema does
	// not compile, so no payload can be accepted until its worker is fixed.
	reasonInvalidSchema = "JOB_TYPE_SCHEMA_INVALID"
)

// failedPrecondition is a FAILED_PRECONDITION status with ErrorInfo.
func failedPrecondition(reason, msg string) error {
	return withDetails(codes.FailedPrecondition, msg, &errdetails.ErrorInfo{Reason: reason, Domain: errorDomain})
}

type fieldViolation = errdetails.BadRequest_FieldViolation

func violation(field, format string, args ...any) *fieldViolation {
	return &fieldViolation{Field: field, Description: fmt.Sprintf(format, args...)}
}

// invalidArgument is an INVALID_ARGUMENT status with BadRequest field
// violations and ErrorInfo, per AIP-193. The message names the first field.
func invalidArgument(vs ...*fieldViolation) error {
	msg := "invalid request"
	if len(vs) > 0 {
		msg = invalidArgumentMessage(vs)
	}
	return withDetails(codes.InvalidArgument, msg,
		&errdetails.BadRequest{FieldViolations: vs},
		&errdetails.ErrorInfo{Reason: reasonInvalidArgument, Domain: errorDomain})
}

// invalidArgumentMessage names the first violation's field and counts the rest.
func invalidArgumentMessage(vs []*fieldViolation) string {
	msg := vs[0].GetField() + ": " + vs[0].GetDescription()
	if vs[0].GetField() == "" {
		msg = vs[0].GetDescription()
	}
	if len(vs) > 1 {
		msg += fmt.Sprintf(" (and %d more)", len(vs)-1)
	}
	return msg
}

func withDetails(code codes.Code, msg string, details ...protoadapt.MessageV1) error {
	st, err := status.New(code, msg).WithDetails(details...)
	if err != nil {
		return status.Error(code, msg)
	}
	return st.Err()
}

// toStatus maps an error returned by a handler to the status the client
// sees. Status errors pass through. Anything unexpected is logged with its
// cause and returned as a generic INTERNAL error that carries only the
// request id, so Redis or Lua error text never reaches a client.
func toStatus(ctx context.Context, log *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var nf *notFoundError
	var se *store.StateError
	var ic *store.IdempotencyConflictError
	var qe *store.QuotaError
	switch {
	case errors.As(err, &se):
		return withDetails(codes.FailedPrecondition, fmt.Sprintf("cannot %s job: it is %s", se.Op, se.State),
			&errdetails.ErrorInfo{Reason: reasonBadState, Domain: errorDomain, Metadata: map[string]string{"state": string(se.State)}},
			&errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{
				Type: "STATE", Subject: "job", Description: fmt.Sprintf("job is %s", se.State),
			}}})
	case errors.Is(err, store.ErrTooManyWatchers):
		return withDetails(codes.ResourceExhausted, err.Error(),
			&errdetails.ErrorInfo{Reason: "TOO_MANY_WATCHES", Domain: errorDomain},
			&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)})
	case errors.As(err, &qe):
		return withDetails(codes.ResourceExhausted, qe.Error(),
			&errdetails.ErrorInfo{Reason: "QUOTA_EXCEEDED", Domain: errorDomain, Metadata: map[string]string{"limit": fmt.Sprint(qe.Limit)}},
			&errdetails.RetryInfo{RetryDelay: durationpb.New(5 * time.Second)})
	case errors.As(err, &ic):
		return withDetails(codes.AlreadyExists, ic.Error(),
			&errdetails.ErrorInfo{Reason: reasonIdempotency, Domain: errorDomain, Metadata: map[string]string{"job": "jobs/" + ic.JobID}})
	case errors.As(err, &nf):
		return withDetails(codes.NotFound, fmt.Sprintf("job %q not found", nf.name),
			&errdetails.ErrorInfo{Reason: reasonNotFound, Domain: errorDomain},
			&errdetails.ResourceInfo{ResourceType: "jobforge.dev/Job", ResourceName: nf.name})
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "request deadline exceeded")
	case errors.Is(err, store.ErrNotReplicated):
		log.WarnContext(ctx, "create not confirmed by enough replicas", "method", method, "error", err)
		return withDetails(codes.Unavailable, "the job was written but no replica confirmed it in time, so it could be lost in a failover; retry with the same idempotency key (Idempotency-Key header, job.idempotency_key): the retry returns the job if it was kept and creates it if it was not",
			&errdetails.ErrorInfo{Reason: reasonNotReplicated, Domain: errorDomain},
			&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)})
	case errors.Is(err, store.ErrUnavailable):
		log.WarnContext(ctx, "backend unavailable", "method", method, "error", err)
		return withDetails(codes.Unavailable, "job store temporarily unavailable; retry shortly",
			&errdetails.ErrorInfo{Reason: reasonUnavailable, Domain: errorDomain},
			&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)})
	}
	id := requestID(ctx)
	log.ErrorContext(ctx, "internal error", "method", method, "error", err)
	return withDetails(codes.Internal, fmt.Sprintf("internal error (request id %s)", id),
		&errdetails.ErrorInfo{Reason: reasonInternal, Domain: errorDomain, Metadata: map[string]string{"request_id": id}})
}

// notFoundError is a job that does not exist for the caller.
type notFoundError struct{ name string }

func (e *notFoundError) Error() string { return "job " + e.name + " not found" }

func notFound(name string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return &notFoundError{name: name}
	}
	return err
}

// withErrorInfo adds ErrorInfo{reason: <code name>} to a status that has
// none (errors raised outside jobforge's handlers, e.g. by the gateway's
// JSON decoder), so every error a client sees carries a reason.
func withErrorInfo(st *status.Status) *status.Status {
	if st.Code() == codes.OK {
		return st
	}
	for _, d := range st.Details() {
		if _, ok := d.(*errdetails.ErrorInfo); ok {
			return st
		}
	}
	out, err := st.WithDetails(&errdetails.ErrorInfo{Reason: codeReason(st.Code()), Domain: errorDomain})
	if err != nil {
		return st
	}
	return out
}

// codeReason is the SCREAMING_SNAKE name of a code, e.g. INVALID_ARGUMENT.
func codeReason(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}
