// Package queue is jobforge's storage and queueing layer: the only package
// that talks to Redis. Jobs are queued and executed through asynq; what
// asynq does not keep (state as clients see it, progress, results, attempt
// errors, timestamps) lives in one Redis hash per job under the "jobforge:"
// prefix, written with go-redis.
//
// Every jobforge key of a job carries the job id as a hash tag
// ("jobforge:job:{<id>}") so that a job's keys share one Redis Cluster slot.
package queue

import (
	"errors"
	"net"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/jobforge/jobforge/internal/store"
)

const keyPrefix = "jobforge:"

// Task headers jobforge adds to asynq tasks.
const (
	headerTimeout   = "jf-timeout-ms" // per-attempt timeout in milliseconds
	headerRetry     = "jf-retry"      // RetryPolicy.String()
	headerNotBefore = "jf-not-before" // schedule time, Unix microseconds
	headerTenant    = "jf-tenant"     // owner of the job
)

func jobKey(id string) string    { return keyPrefix + "job:{" + id + "}" }
func eventsKey(id string) string { return keyPrefix + "job:{" + id + "}:events" }
func errorsKey(id string) string { return keyPrefix + "job:{" + id + "}:errors" }

// jobKeys are the keys of one job, in the order the lifecycle scripts take.
func jobKeys(id string) []string { return []string{jobKey(id), eventsKey(id), errorsKey(id)} }

// indexKey is a tenant's list index: a sorted set of job ids scored by
// create time in microseconds.
func indexKey(tenant string) string { return keyPrefix + "index:{" + tenant + "}" }

// waitingKey holds a tenant's jobs that have not started (PENDING,
// SCHEDULED), for the per-tenant quota.
func waitingKey(tenant string) string { return keyPrefix + "waiting:{" + tenant + "}" }

// idemKey remembers an idempotency key of a tenant.
func idemKey(tenant, key string) string { return keyPrefix + "idem:{" + tenant + "}:" + key }

// cancelChannel carries the ids of running jobs that were cancelled.
const cancelChannel = keyPrefix + "cancel"

// IsUnavailable reports whether err means Redis could not be reached or
// cannot take writes for now (as opposed to a bug or a bad request), so
// callers may answer "retry later".
func IsUnavailable(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) ||
		errors.Is(err, redis.ErrClosed) ||
		errors.Is(err, redis.ErrPoolTimeout) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, net.ErrClosed) ||
		// A failover in progress: the server is a replica now, still
		// loading its data, or has lost its master.
		redis.IsReadOnlyError(err) || redis.IsLoadingError(err) || redis.IsMasterDownError(err)
}

// unavailableError is an error that means Redis could not be reached,
// marked so that callers on the other side of the store seam can tell it
// (errors.Is(err, store.ErrUnavailable)) without knowing Redis's errors.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string   { return e.err.Error() }
func (e *unavailableError) Unwrap() []error { return []error{e.err, store.ErrUnavailable} }

// markUnavailable marks *err if it means Redis could not be reached. Every
// method of the store seam defers it.
func markUnavailable(err *error) {
	if *err != nil && IsUnavailable(*err) && !errors.Is(*err, store.ErrUnavailable) {
		*err = &unavailableError{*err}
	}
}

// Client is the Redis client the queue layer uses; callers only pass it
// around and close it.
type Client = redis.UniversalClient
