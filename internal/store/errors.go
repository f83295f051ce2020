package store

import (
	"errors"
	"fmt"
)

// ErrNotFound is returned for a job that does not exist for the caller's
// tenant or whose retention has passed.
var ErrNotFound = errors.New("job not found")

// ErrScheduleNotFound is returned for a schedule that does not exist for
// the caller's tenant.
var ErrScheduleNotFound = errors.New("schedule not found")

// ErrTooManyWatchers is returned when a store's watch limit is reached.
var ErrTooManyWatchers = errors.New("too many concurrent watches on this server; retry later")

// ErrUnavailable is matched (errors.Is) by errors that mean the backend
// could not be reached, as opposed to a bug or a bad request: callers may
// answer "retry later". Implementations keep the cause in the chain.
var ErrUnavailable = errors.New("store unavailable")

// ErrNotReplicated is matched by errors of creates that the backend wrote
// but that fewer replicas than required confirmed in time: the job exists
// unless the primary fails before a replica has it. Such errors also match
// ErrUnavailable (retry later); a retry with the same idempotency key
// returns the job if it survived and creates it if it did not.
var ErrNotReplicated = errors.New("write not confirmed by enough replicas")

// StateError is returned when an operation does not apply to the job's
// current state, e.g. cancelling a finished job.
type StateError struct {
	Op    string
	State State
}

func (e *StateError) Error() string {
	return fmt.Sprintf("cannot %s a job in state %s", e.Op, e.State)
}

// QuotaError is returned when a tenant has as many waiting (pending or
// scheduled) jobs as it may.
type QuotaError struct{ Limit int }

func (e *QuotaError) Error() string {
	return fmt.Sprintf("too many waiting jobs: the tenant may have at most %d pending or scheduled jobs", e.Limit)
}

// IdempotencyConflictError is returned when an idempotency key was used
// before with a different request.
type IdempotencyConflictError struct {
	Key   string
	JobID string
}

func (e *IdempotencyConflictError) Error() string {
	return fmt.Sprintf("idempotency key %q was already used with a different request (job %s)", e.Key, e.JobID)
}
