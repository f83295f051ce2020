// Package store is jobforge's storage seam: the domain types of jobs,
// schedules and queues, and the interfaces the API serves them through
// (JobStore, ScheduleStore, QueueStore; Store is all three). The types are
// plain Go values; how a backend encodes them (Redis hashes, streams and
// asynq tasks in internal/queue) stays inside the backend.
//
// A job's stored state is a Record, not a "Job": the API's resource is
// jobforgev1.Job and a handler's view of a run is jobs.Job, and a third
// Job would leave every file that meets two of them guessing.
//
// What an implementation guarantees, beyond each method's comment:
//
//   - A create is atomic: the record, its idempotency key, its place in
//     listings and quota and its run are stored together or not at all.
//   - A job moves PENDING or SCHEDULED → RUNNING → SUCCEEDED, or through
//     RETRYING back to RUNNING until its attempts are used up → FAILED; a
//     permanent failure fails at once; Cancel makes any unfinished job
//     CANCELLED for good, and a running handler sees its context cancelled.
//     Finished states never change except by Retry of a FAILED or
//     CANCELLED job. A refused transition is a *StateError.
//   - Every method is scoped to a tenant; another tenant's job or schedule
//     is ErrNotFound or ErrScheduleNotFound, never a different error.
//   - A finished job is readable for the retention, then gone everywhere
//     (Get, List, Watch) at once; an unfinished job never expires.
//   - Each job's events have increasing, opaque ids; a watch resumed after
//     any id sends exactly the events that followed it.
//   - Following List cursors returns every job that matched when the
//     listing began exactly once, newest first, whatever is created meanwhile.
//   - Errors that mean the backend is unreachable match ErrUnavailable.
//
// The conformance suite in package storetest checks these with a real
// worker (all but the last, which needs a backend to fail: the API's tests
// stop Redis for it); every implementation runs it, the Redis one in
// internal/queue's TestConformance.
package store

import "context"

// JobStore creates jobs and reads and changes their records. Every method
// is scoped to a tenant: another tenant's job is ErrNotFound, so ids cannot
// be probed. Implementations are safe for concurrent use.
type JobStore interface {
	// Create stores and enqueues a job, atomically. With an idempotency
	// key, the first request claims the key within the tenant; a later
	// request with the same key and RequestHash gets the original record
	// and existed = true, with another hash an *IdempotencyConflictError.
	// A deterministic NewJob.ID that exists gives that job and existed =
	// true. A tenant over its waiting-job quota gets a *QuotaError.
	Create(ctx context.Context, nj NewJob) (rec *Record, existed bool, err error)
	// CreateMany creates jobs with one result per item, in order; each
	// item is created whole or not at all. With atomic, a failure of any
	// item leaves none created and every item reports an error.
	CreateMany(ctx context.Context, jobs []NewJob, atomic bool) []CreateResult
	// Get returns the record of job id of tenant, or ErrNotFound (also
	// after its retention has passed).
	Get(ctx context.Context, tenant, id string) (*Record, error)
	// Cancel makes a waiting or running job CANCELLED (a running job's
	// handler sees its context cancelled); a finished job gives a
	// *StateError with Op "cancel".
	Cancel(ctx context.Context, tenant, id, reason, by string) (*Record, error)
	// Retry runs a FAILED or CANCELLED job again with the same id and a
	// fresh attempt budget; other states give a *StateError with Op "retry".
	Retry(ctx context.Context, tenant, id string) (*Record, error)
	// List returns up to q.Limit matching jobs of q.Tenant, newest first,
	// and a cursor for the next page, or nil at the end. A page may be
	// short (even empty) with a cursor; following cursors returns every
	// matching job once.
	List(ctx context.Context, q ListQuery) ([]*Record, *Cursor, error)
	// Watch calls fn with the job's events, in order, until the job is
	// finished (after its terminal event), fn returns an error, or ctx is
	// done. Without after it first sends an EventSnapshot of the current
	// record whose ID is the last event it reflects; with after it sends
	// only the events that follow that id, so a resumed watch has no gaps
	// and no repeats.
	Watch(ctx context.Context, tenant, id, after string, fn func(Event) error) error
}

// ScheduleStore keeps cron schedules. Schedules are scoped to a tenant
// like jobs: another tenant's schedule is ErrScheduleNotFound.
type ScheduleStore interface {
	// CreateSchedule stores a new schedule and returns it with its id,
	// create time and canonical time zone. The job template must be
	// validated by the caller; an invalid spec is a *SpecError.
	CreateSchedule(ctx context.Context, sc Schedule) (*Schedule, error)
	GetSchedule(ctx context.Context, tenant, id string) (*Schedule, error)
	// ListSchedules returns every schedule of tenant, oldest first.
	ListSchedules(ctx context.Context, tenant string) ([]*Schedule, error)
	// DeleteSchedule removes a schedule; jobs it created are kept.
	DeleteSchedule(ctx context.Context, tenant, id string) error
}

// QueueStore reports and controls queues and the workers that read them.
type QueueStore interface {
	// Queues reports each named queue, in the order given, also one that
	// no job has used yet.
	Queues(ctx context.Context, names []string) ([]QueueInfo, error)
	// PauseQueue stops workers from starting jobs of a queue; running jobs
	// go on. ResumeQueue undoes it. Both are idempotent.
	PauseQueue(ctx context.Context, name string) error
	ResumeQueue(ctx context.Context, name string) error
	// Workers lists the live worker pools.
	Workers(ctx context.Context) ([]WorkerInfo, error)
}

// Store is everything the API needs from a backend.
type Store interface {
	JobStore
	ScheduleStore
	QueueStore
}
