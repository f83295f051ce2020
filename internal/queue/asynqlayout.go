package queue

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// asynq's Redis layout, as of the asynq version in go.mod (v0.26).
//
// jobforge writes and moves asynq tasks itself in two places where asynq's
// public API cannot give the guarantee jobforge promises:
//   - a create writes the job record, its index and quota entries, the
//     idempotency key and the asynq task in one Lua script (createScript),
//     so no crash can leave a record without a task or a key without a job;
//   - the recovery loop (recovery.go) moves a crashed worker's tasks from
//     asynq's active list back to pending within seconds, where asynq's own
//     recoverer waits for a 30 s lease plus up to a minute and then counts
//     the crash as a failed attempt.
//
// Everything that depends on the layout is in this file and in the scripts
// that take these keys; asynqlayout_test.go compares what jobforge writes
// with what asynq.Client writes for the same task, key by key and field by
// field, and runs such tasks through a real asynq.Server and Inspector, so an
// asynq upgrade that changes the layout fails the tests.

// asynqAllQueues is the set of every queue name asynq knows.
const asynqAllQueues = "asynq:queues"

func asynqQueuePrefix(q string) string     { return "asynq:{" + q + "}:" }
func asynqTaskKey(q, id string) string     { return asynqQueuePrefix(q) + "t:" + id }
func asynqPendingKey(q string) string      { return asynqQueuePrefix(q) + "pending" }
func asynqActiveKey(q string) string       { return asynqQueuePrefix(q) + "active" }
func asynqLeaseKey(q string) string        { return asynqQueuePrefix(q) + "lease" }
func asynqScheduledKey(q string) string    { return asynqQueuePrefix(q) + "scheduled" }
func asynqRetryKey(q string) string        { return asynqQueuePrefix(q) + "retry" }
func asynqArchivedKey(q string) string     { return asynqQueuePrefix(q) + "archived" }
func asynqLeaseScore(t time.Time) float64  { return float64(t.Unix()) }
func asynqPendingSince(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) }

// asynqLeaseDuration is how far asynq's workers extend the lease of a task
// they run (rdb.LeaseDuration). jobforge's workers extend it the same way,
// only more often, so a lease that has not been extended for a few seconds
// marks a task whose worker died.
const asynqLeaseDuration = 30 * time.Second

// asynqTask is the part of asynq's TaskMessage (internal/proto/asynq.proto)
// that jobforge sets: the rest (retried, error_msg, last_failed_at,
// deadline, unique_key, group_key, retention, completed_at) is zero for a
// new task and omitted from the encoding, as proto3 does.
type asynqTask struct {
	Type    string
	Payload []byte
	Headers taskHeaders
	ID      string
	Queue   string
	Retry   int
	Timeout time.Duration // whole seconds
}

// TaskMessage field numbers.
const (
	tmType    protowire.Number = 1
	tmPayload protowire.Number = 2
	tmID      protowire.Number = 3
	tmQueue   protowire.Number = 4
	tmRetry   protowire.Number = 5
	tmTimeout protowire.Number = 8
	tmHeaders protowire.Number = 15
)

// taskHeaders are a task's headers (TaskMessage's map field), in a slice:
// a new task has a handful, which a map would only hash, allocate and sort.
// It is the carrier the trace propagator injects into.
type taskHeaders []taskHeader

type taskHeader struct{ k, v string }

// Set sets header k to v.
func (h *taskHeaders) Set(k, v string) {
	for i := range *h {
		if (*h)[i].k == k {
			(*h)[i].v = v
			return
		}
	}
	*h = append(*h, taskHeader{k, v})
}

// Get returns header k, "" when it is not set.
func (h *taskHeaders) Get(k string) string {
	for _, e := range *h {
		if e.k == k {
			return e.v
		}
	}
	return ""
}

// Keys returns the names of the headers set.
func (h *taskHeaders) Keys() []string {
	keys := make([]string, len(*h))
	for i, e := range *h {
		keys[i] = e.k
	}
	return keys
}

// Map returns the headers as asynq's Task has them.
func (h taskHeaders) Map() map[string]string {
	m := make(map[string]string, len(h))
	for _, e := range h {
		m[e.k] = e.v
	}
	return m
}

// encode returns the protobuf encoding asynq stores in the task hash's
// "msg" field, fields in number order like the Go protobuf encoder; map
// entries sorted by key (asynq's own encoder leaves their order random),
// which sorts t.Headers in place.
func (t asynqTask) encode() []byte {
	slices.SortFunc(t.Headers, func(a, b taskHeader) int { return strings.Compare(a.k, b.k) })
	size := 32 + len(t.Payload) + len(t.Type) + len(t.ID) + len(t.Queue)
	for _, e := range t.Headers {
		size += 8 + len(e.k) + len(e.v)
	}
	b := make([]byte, 0, size)
	str := func(n protowire.Number, s string) {
		if s != "" {
			b = protowire.AppendTag(b, n, protowire.BytesType)
			b = protowire.AppendString(b, s)
		}
	}
	varint := func(n protowire.Number, v int64) {
		if v != 0 {
			b = protowire.AppendTag(b, n, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(v))
		}
	}
	str(tmType, t.Type)
	if len(t.Payload) > 0 {
		b = protowire.AppendTag(b, tmPayload, protowire.BytesType)
		b = protowire.AppendBytes(b, t.Payload)
	}
	str(tmID, t.ID)
	str(tmQueue, t.Queue)
	varint(tmRetry, int64(int32(t.Retry)))
	varint(tmTimeout, int64(t.Timeout/time.Second))
	for _, e := range t.Headers {
		k, v := e.k, e.v
		b = protowire.AppendTag(b, tmHeaders, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(2+protowire.SizeBytes(len(k))+protowire.SizeBytes(len(v))))
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, k)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, v)
	}
	return b
}
