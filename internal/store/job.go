package store

import (
	"encoding/json"
	"time"
)

// State is a job's lifecycle state as clients see it. The values are the
// names of the API's Job.State enum.
type State string

// Job states.
const (
	StatePending   State = "PENDING"
	StateScheduled State = "SCHEDULED"
	StateRunning   State = "RUNNING"
	StateRetrying  State = "RETRYING"
	StateSucceeded State = "SUCCEEDED"
	StateFailed    State = "FAILED"
	StateCancelled State = "CANCELLED"
)

// Terminal reports whether no further attempt will run.
func (s State) Terminal() bool {
	return s == StateSucceeded || s == StateFailed || s == StateCancelled
}

// Record is everything jobforge knows about one job.
type Record struct {
	ID          string
	Tenant      string
	Type        string
	Queue       string
	State       State
	Payload     json.RawMessage
	Labels      map[string]string
	MaxAttempts int
	Attempts    int
	// LostAttempts counts attempts that ended without an outcome because
	// their worker stopped heartbeating; they are not in Attempts.
	LostAttempts int
	Timeout      time.Duration
	CreateTime   time.Time
	ScheduleTime time.Time
	StartTime    time.Time
	EndTime      time.Time
	UpdateTime   time.Time
	ExpireTime   time.Time
	Progress     Progress
	Result       json.RawMessage
	Error        *AttemptError
	// AttemptErrors are the most recent attempt errors, oldest first.
	AttemptErrors  []AttemptError
	RetryPolicy    RetryPolicy
	IdempotencyKey string
	Cancellation   *Cancellation
}

// Cancellation records who cancelled a job, when and why.
type Cancellation struct {
	Reason      string
	RequestedBy string
	Time        time.Time
}

// Progress is the latest progress report of a running job.
type Progress struct {
	Percent    int
	Message    string
	UpdateTime time.Time
}

// AttemptError records why an attempt failed. Its JSON form is how
// implementations store it.
type AttemptError struct {
	Message   string    `json:"message"`
	Attempt   int       `json:"attempt"`
	Permanent bool      `json:"permanent,omitempty"`
	Time      time.Time `json:"time"`
	// Lost marks an attempt that ended without an outcome because its
	// worker stopped (crash, kill, shutdown); it does not count against
	// max_attempts.
	Lost bool `json:"lost,omitempty"`
	// Reason is a machine-readable cause: ReasonWorkerLost, or empty.
	Reason string `json:"reason,omitempty"`
}

// ReasonWorkerLost is the reason of the error of a job that failed because
// its attempts kept losing their workers.
const ReasonWorkerLost = "WORKER_LOST"

// NewJob is a validated create request.
type NewJob struct {
	// ID is normally empty (the store assigns a time-ordered id); callers
	// that need exactly-once creation pass a deterministic one.
	ID           string
	Tenant       string
	Type         string
	Queue        string
	Payload      json.RawMessage
	Labels       map[string]string
	MaxAttempts  int
	Timeout      time.Duration
	ScheduleTime time.Time
	RetryPolicy  RetryPolicy
	// IdempotencyKey and RequestHash make the create idempotent within the
	// tenant: see JobStore.Create.
	IdempotencyKey string
	RequestHash    string
}

// CreateResult is the outcome of one item of JobStore.CreateMany.
type CreateResult struct {
	Record  *Record
	Existed bool
	Err     error
}

// ListQuery selects jobs of one tenant, newest first.
type ListQuery struct {
	Tenant string
	// Match reports whether a record belongs in the result; nil matches all.
	Match func(*Record) bool
	// CreatedAfter/CreatedBefore bound the create time (exclusive; zero = open).
	CreatedAfter, CreatedBefore time.Time
	// Limit is the page size.
	Limit int
	// After continues a previous listing.
	After *Cursor
}

// Cursor is a position in a tenant's jobs, newest first: the create time
// (Unix microseconds) and id of the last job returned. Jobs with the same
// create time are ordered by id, descending.
type Cursor struct {
	Score int64
	ID    string
}
