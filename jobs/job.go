// Package jobs is the kit for writing job types.
//
// A job type is a stable name, a typed payload with validation, defaults
// (queue, timeout, attempts), an example payload and a handler. Define
// builds a Type from a Spec; a worker (package worker) registers the types
// it runs and publishes their catalogue entries (name, description,
// defaults, payload JSON Schema, example) so the API validates submissions
// without any job code. Package jobstest runs a handler in a unit test;
// package builtin holds the types jobforge ships with.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Job is the handle a handler receives for the job it is executing.
type Job struct {
	// ID is the job's stable identifier; it does not change across attempts.
	ID string
	// Type is the job type name.
	Type string
	// Attempt counts from 1 for the first attempt.
	Attempt int
	// MaxAttempts is the number of attempts allowed in total.
	MaxAttempts int

	reporter Reporter
}

// Reporter stores progress reported by a running handler. The worker runtime
// provides one that writes to Redis; jobstest provides one that records.
type Reporter interface {
	ReportProgress(ctx context.Context, percent int, message string) error
}

// NewJob returns a Job handle. It is used by the worker runtime and by tests.
func NewJob(id, typ string, attempt, maxAttempts int, r Reporter) *Job {
	return &Job{ID: id, Type: typ, Attempt: attempt, MaxAttempts: maxAttempts, reporter: r}
}

// Progress reports how far the job has come: percent is clamped to 0..100
// and message describes the current step. Reporting is best-effort for the
// caller's purposes, but an error is returned so handlers may log it.
func (j *Job) Progress(ctx context.Context, percent int, message string) error {
	if j == nil || j.reporter == nil {
		return nil
	}
	percent = min(max(percent, 0), 100)
	return j.reporter.ReportProgress(ctx, percent, message)
}

// crasher is implemented by a worker runtime that can end its own process
// on request (see Simulate's "crash" outcome). The runtime decides whether
// it may: a production worker refuses.
type crasher interface {
	Crash() error
}

// Crash ends the worker process at once, as an out-of-memory kill would,
// when the worker allows it (worker option AllowCrashJobs, for fault drills
// that check how a fleet handles a job that kills its worker); otherwise it
// returns why not and the process goes on. A production worker refuses.
func (j *Job) Crash() error {
	c, ok := j.reporter.(crasher)
	if !ok {
		return errors.New("this worker runtime cannot simulate a crash")
	}
	return c.Crash()
}

// LastAttempt reports whether a failure of this attempt would be final.
func (j *Job) LastAttempt() bool { return j.Attempt >= j.MaxAttempts }

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying: the job fails at once, whatever
// attempts remain. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// FieldViolation says what is wrong with one payload field. Field is a dotted
// path relative to the payload ("limit", "items.2.url"); empty means the
// payload as a whole.
type FieldViolation struct {
	Field       string
	Description string
}

// ValidationError is returned for a payload that does not fit its job type.
type ValidationError struct {
	Violations []FieldViolation
}

// Invalid returns a ValidationError with one violation; a convenience for
// payload Validate methods.
func Invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Violations: []FieldViolation{{Field: field, Description: fmt.Sprintf(format, args...)}}}
}

func (e *ValidationError) Error() string {
	parts := make([]string, 0, len(e.Violations))
	for _, v := range e.Violations {
		if v.Field == "" {
			parts = append(parts, v.Description)
			continue
		}
		parts = append(parts, v.Field+": "+v.Description)
	}
	return "invalid payload: " + strings.Join(parts, "; ")
}
