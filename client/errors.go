package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sentinel errors, one per status code the API answers with. Every error
// the server returns is an [*Error] that matches the sentinel of its code
// with [errors.Is]:
//
//	if errors.Is(err, client.ErrNotFound) { … }
//
// A call that ran out of time or was cancelled matches
// [context.DeadlineExceeded] or [context.Canceled] instead.
var (
	// ErrInvalidArgument: the request is wrong as sent (an unknown job
	// type or queue, a payload that does not match the type's schema, a
	// bad filter or page token). [Error.FieldViolations] says which fields.
	// Sending it again will fail again. Payloads the client cannot encode
	// (see [Submit]) match it too.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotFound: the job does not exist for the caller's tenant, or its
	// retention has passed.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: an idempotency key was reused with a different
	// request. [Error.Metadata]["job"] names the job the key belongs to.
	ErrAlreadyExists = errors.New("already exists")
	// ErrFailedPrecondition: the job is in the wrong state for the call
	// (cancelling a finished job, retrying one that has not failed).
	// [Error.Metadata]["state"] is the state it is in.
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrAborted: an item of an all-or-nothing batch that was valid but not
	// created because another item was not (see [AllOrNothing]).
	ErrAborted = errors.New("aborted")
	// ErrUnauthenticated: no token, or one the server does not accept.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrPermissionDenied: the token lacks the scope the call needs
	// ([Error.Metadata]["scope"]).
	ErrPermissionDenied = errors.New("permission denied")
	// ErrResourceExhausted: a quota or rate limit was hit, or the server
	// has too many watches open. Retry after [Error.RetryDelay].
	ErrResourceExhausted = errors.New("resource exhausted")
	// ErrUnavailable: the server cannot be reached or its store is briefly
	// down. Safe to retry, after [Error.RetryDelay] when it is set; retry
	// a create with the same idempotency key (see [IdempotencyKey]) so that
	// it cannot run twice.
	ErrUnavailable = errors.New("unavailable")
	// ErrInternal: the server failed; [Error.Metadata]["request_id"]
	// identifies the request in its logs.
	ErrInternal = errors.New("internal error")
)

// sentinels maps each status code to its sentinel error.
var sentinels = map[codes.Code]error{
	codes.InvalidArgument:    ErrInvalidArgument,
	codes.NotFound:           ErrNotFound,
	codes.AlreadyExists:      ErrAlreadyExists,
	codes.FailedPrecondition: ErrFailedPrecondition,
	codes.Aborted:            ErrAborted,
	codes.Unauthenticated:    ErrUnauthenticated,
	codes.PermissionDenied:   ErrPermissionDenied,
	codes.ResourceExhausted:  ErrResourceExhausted,
	codes.Unavailable:        ErrUnavailable,
	codes.Internal:           ErrInternal,
	codes.Canceled:           context.Canceled,
	codes.DeadlineExceeded:   context.DeadlineExceeded,
}

// Error is an error the server (or the gRPC transport) returned, with the
// details the API attaches to it (google.rpc.Status details, AIP-193).
// Get it with [errors.As]:
//
//	var e *client.Error
//	if errors.As(err, &e) {
//		for _, v := range e.FieldViolations {
//			log.Printf("%s: %s", v.GetField(), v.GetDescription())
//		}
//	}
//
// Error also implements GRPCStatus, so [status.FromError] and
// [status.Code] keep working on it.
type Error struct {
	// Code is the gRPC status code.
	Code codes.Code
	// Message is the server's description, meant for people.
	Message string
	// Reason is the machine-readable cause from google.rpc.ErrorInfo,
	// stable and safe to switch on: e.g. JOB_NOT_FOUND, JOB_STATE_CONFLICT,
	// IDEMPOTENCY_KEY_REUSED, QUOTA_EXCEEDED, TOO_MANY_WATCHES,
	// MISSING_SCOPE. Empty when the error carries no ErrorInfo (errors of
	// the transport itself).
	Reason string
	// Metadata is ErrorInfo's key/value context, e.g. "state" for
	// JOB_STATE_CONFLICT, "job" for IDEMPOTENCY_KEY_REUSED.
	Metadata map[string]string
	// FieldViolations are the google.rpc.BadRequest violations of an
	// INVALID_ARGUMENT error: one per wrong field, named by its path in the
	// request (e.g. job.payload.limit).
	FieldViolations []*errdetails.BadRequest_FieldViolation
	// RetryDelay is how long the server asks the caller to wait before
	// retrying (google.rpc.RetryInfo); 0 when it gave no advice.
	RetryDelay time.Duration

	status *status.Status
}

// Error returns the message followed by the code, e.g.
// `job "jobs/x" not found (NotFound)`.
func (e *Error) Error() string { return fmt.Sprintf("%s (%s)", e.Message, e.Code) }

// Is reports whether target is the sentinel error of e's code (see
// [ErrNotFound] and the others, [context.Canceled] and
// [context.DeadlineExceeded]).
func (e *Error) Is(target error) bool {
	s, ok := sentinels[e.Code]
	return ok && s == target
}

// GRPCStatus returns the status the error was made from, with its details.
func (e *Error) GRPCStatus() *status.Status { return e.status }

// fromStatus makes an *Error of a status and its details.
func fromStatus(st *status.Status) *Error {
	e := &Error{Code: st.Code(), Message: st.Message(), status: st}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			e.Reason, e.Metadata = d.GetReason(), d.GetMetadata()
		case *errdetails.BadRequest:
			e.FieldViolations = append(e.FieldViolations, d.GetFieldViolations()...)
		case *errdetails.RetryInfo:
			e.RetryDelay = d.GetRetryDelay().AsDuration()
		}
	}
	return e
}

// convert turns a status error into an *Error. io.EOF (the normal end of
// a stream), errors that already are *Error and errors that are not a
// status pass through unchanged.
func convert(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return err
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	return fromStatus(st)
}
