package queue

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jobforge/jobforge/internal/store"
)

// Hash field names of a job record.
const (
	fType        = "type"
	fQueue       = "queue"
	fState       = "state"
	fPayload     = "payload"
	fLabels      = "labels"
	fMaxAttempts = "max_attempts"
	fAttempts    = "attempts"
	fLost        = "lost"
	fTimeoutMS   = "timeout_ms"
	fCreate      = "create_us"
	fSchedule    = "schedule_us"
	fStart       = "start_us"
	fEnd         = "end_us"
	fUpdate      = "update_us"
	fExpire      = "expire_us"
	fPercent     = "progress_pct"
	fMessage     = "progress_msg"
	fProgress    = "progress_us"
	fResult      = "result"
	fError       = "error"
	fTenant      = "tenant"
	fRetry       = "retry_policy"
	fIdemKey     = "idempotency_key"
	fCancelWhy   = "cancel_reason"
	fCancelBy    = "cancel_by"
	fCancelTime  = "cancel_us"
)

func micros(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

func parseMicros(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.UnixMicro(n).UTC()
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// decodeRecord builds a Record from HGETALL output. now turns a SCHEDULED
// job whose time has come into PENDING, which is what it is until a worker
// picks it up.
func decodeRecord(id string, h map[string]string, errs []string, now time.Time) (*store.Record, error) {
	r := &store.Record{
		ID:             id,
		Tenant:         h[fTenant],
		IdempotencyKey: h[fIdemKey],
		Type:           h[fType],
		Queue:          h[fQueue],
		State:          store.State(h[fState]),
		Payload:        json.RawMessage(h[fPayload]),
		MaxAttempts:    atoi(h[fMaxAttempts]),
		Attempts:       atoi(h[fAttempts]),
		LostAttempts:   atoi(h[fLost]),
		Timeout:        time.Duration(atoi(h[fTimeoutMS])) * time.Millisecond,
		CreateTime:     parseMicros(h[fCreate]),
		ScheduleTime:   parseMicros(h[fSchedule]),
		StartTime:      parseMicros(h[fStart]),
		EndTime:        parseMicros(h[fEnd]),
		UpdateTime:     parseMicros(h[fUpdate]),
		ExpireTime:     parseMicros(h[fExpire]),
		Progress: store.Progress{
			Percent:    atoi(h[fPercent]),
			Message:    h[fMessage],
			UpdateTime: parseMicros(h[fProgress]),
		},
	}
	if v := h[fResult]; v != "" {
		r.Result = json.RawMessage(v)
	}
	if v := h[fLabels]; v != "" {
		if err := json.Unmarshal([]byte(v), &r.Labels); err != nil {
			return nil, fmt.Errorf("decode labels of job %s: %w", id, err)
		}
	}
	if v := h[fError]; v != "" {
		r.Error = new(store.AttemptError)
		if err := json.Unmarshal([]byte(v), r.Error); err != nil {
			return nil, fmt.Errorf("decode error of job %s: %w", id, err)
		}
	}
	if v := h[fRetry]; v != "" {
		p, err := store.ParseRetryPolicy(v)
		if err != nil {
			return nil, fmt.Errorf("decode retry policy of job %s: %w", id, err)
		}
		r.RetryPolicy = p
	}
	if v := h[fCancelTime]; v != "" {
		r.Cancellation = &store.Cancellation{Reason: h[fCancelWhy], RequestedBy: h[fCancelBy], Time: parseMicros(v)}
	}
	for _, e := range errs {
		var ae store.AttemptError
		if err := json.Unmarshal([]byte(e), &ae); err != nil {
			return nil, fmt.Errorf("decode attempt error of job %s: %w", id, err)
		}
		r.AttemptErrors = append(r.AttemptErrors, ae)
	}
	if r.State == store.StateScheduled && !r.ScheduleTime.After(now) {
		r.State = store.StatePending
	}
	return r, nil
}
