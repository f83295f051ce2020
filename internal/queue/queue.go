// Package queue is jobforge's storage and queueing layer: the only package
// that talks to Redis. Jobs are queued and executed through asynq; what
// asynq does not keep (state as clients see it, progress, results, attempt
// errors, timestamps) lives in one Redis hash per job under the "jobforge:"
// prefix, written with go-redis.
//
// Every jobforge key of a job lives in its queue's Redis Cluster hash slot:
// it carries the queue name as its hash tag, the same tag as asynq's keys of
// that queue ("asynq:{<queue>}:..."). So the scripts that write a job and
// its asynq task together (create, retry, recovery) touch one slot, on a
// single Redis, under Sentinel and on a Cluster alike. See docs/redis.md.
package queue

import (
	"errors"
	"io"
	"net"
	"strings"
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

// queuePrefix starts every jobforge key of queue q's slot.
func queuePrefix(q string) string { return keyPrefix + "{" + q + "}:" }

func jobKey(q, id string) string    { return queuePrefix(q) + "job:" + id }
func eventsKey(q, id string) string { return queuePrefix(q) + "job:" + id + ":events" }
func errorsKey(q, id string) string { return queuePrefix(q) + "job:" + id + ":errors" }

// jobKeys are the keys of one job, in the order the lifecycle scripts take.
func jobKeys(q, id string) []string {
	return []string{jobKey(q, id), eventsKey(q, id), errorsKey(q, id)}
}

// indexKey is a tenant's list index in queue q: a sorted set of job ids
// scored by create time in microseconds. A tenant's list merges the
// indexes of every queue.
func indexKey(q, tenant string) string { return queuePrefix(q) + "index:" + tenant }

// waitingKey holds a tenant's jobs in queue q that have not started
// (PENDING, SCHEDULED), for the per-tenant quota, which is per queue.
func waitingKey(q, tenant string) string { return queuePrefix(q) + "waiting:" + tenant }

// idemKey remembers an idempotency key of a tenant in queue q: keys are
// scoped to a queue, like task names in Cloud Tasks.
func idemKey(q, tenant, key string) string { return queuePrefix(q) + "idem:" + tenant + ":" + key }

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
		// The server closed the connection mid-reply (it was killed).
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		// A failover in progress: the server is a replica now, still
		// loading its data, or has lost its master.
		redis.IsReadOnlyError(err) || redis.IsLoadingError(err) || redis.IsMasterDownError(err) ||
		// A Cluster failing over or resharding: the slot's master is down,
		// or moved while a create was sent to it directly (writeClient).
		clusterMoving(err)
}

// clusterMoving reports a Redis Cluster reply that means "try again in a
// moment": the Cluster is down (a master failed and has no replacement yet),
// or a slot is moving or has moved.
func clusterMoving(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	for _, p := range []string{"CLUSTERDOWN", "TRYAGAIN", "MOVED ", "ASK "} {
		if strings.HasPrefix(rerr.Error(), p) {
			return true
		}
	}
	return false
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
