package queue

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

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

// AttemptError records why an attempt failed.
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
func decodeRecord(id string, h map[string]string, errs []string, now time.Time) (*Record, error) {
	r := &Record{
		ID:             id,
		Tenant:         h[fTenant],
		IdempotencyKey: h[fIdemKey],
		Type:           h[fType],
		Queue:          h[fQueue],
		State:          State(h[fState]),
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
		Progress: Progress{
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
		r.Error = new(AttemptError)
		if err := json.Unmarshal([]byte(v), r.Error); err != nil {
			return nil, fmt.Errorf("decode error of job %s: %w", id, err)
		}
	}
	if v := h[fRetry]; v != "" {
		p, err := parseRetryPolicy(v)
		if err != nil {
			return nil, fmt.Errorf("decode retry policy of job %s: %w", id, err)
		}
		r.RetryPolicy = p
	}
	if v := h[fCancelTime]; v != "" {
		r.Cancellation = &Cancellation{Reason: h[fCancelWhy], RequestedBy: h[fCancelBy], Time: parseMicros(v)}
	}
	for _, e := range errs {
		var ae AttemptError
		if err := json.Unmarshal([]byte(e), &ae); err != nil {
			return nil, fmt.Errorf("decode attempt error of job %s: %w", id, err)
		}
		r.AttemptErrors = append(r.AttemptErrors, ae)
	}
	if r.State == StateScheduled && !r.ScheduleTime.After(now) {
		r.State = StatePending
	}
	return r, nil
}

// RetryPolicy is a job's backoff between attempts. Zero fields take the
// defaults: 1 s initial, ×2, at most 10 min, 20 % jitter.
type RetryPolicy struct {
	Initial    time.Duration
	Max        time.Duration
	Multiplier float64
	Jitter     float64
}

// IsZero reports whether every field takes its default.
func (p RetryPolicy) IsZero() bool { return p == RetryPolicy{} }

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Initial <= 0 {
		p.Initial = time.Second
	}
	if p.Max <= 0 {
		p.Max = 10 * time.Minute
	}
	if p.Multiplier <= 0 {
		p.Multiplier = 2
	}
	if p.Jitter <= 0 {
		p.Jitter = 0.2 // zero means "default"; use a tiny value for none
	}
	return p
}

// Delay returns the backoff before the next attempt after n failed
// attempts (n ≥ 1), with jitter drawn from rnd in [0,1).
func (p RetryPolicy) Delay(n int, rnd float64) time.Duration {
	p = p.withDefaults()
	d := float64(p.Initial) * math.Pow(p.Multiplier, float64(max(n-1, 0)))
	d = min(d, float64(p.Max))
	d *= 1 + p.Jitter*(2*rnd-1)
	return max(time.Duration(d), time.Millisecond)
}

// encode is the compact form carried in the record and the task header.
func (p RetryPolicy) encode() string {
	return fmt.Sprintf("%d,%d,%g,%g", p.Initial.Milliseconds(), p.Max.Milliseconds(), p.Multiplier, p.Jitter)
}

func parseRetryPolicy(s string) (RetryPolicy, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return RetryPolicy{}, fmt.Errorf("malformed retry policy %q", s)
	}
	initial, err1 := strconv.ParseInt(parts[0], 10, 64)
	maxMS, err2 := strconv.ParseInt(parts[1], 10, 64)
	mult, err3 := strconv.ParseFloat(parts[2], 64)
	jitter, err4 := strconv.ParseFloat(parts[3], 64)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return RetryPolicy{}, fmt.Errorf("malformed retry policy %q: %w", s, err)
	}
	return RetryPolicy{
		Initial:    time.Duration(initial) * time.Millisecond,
		Max:        time.Duration(maxMS) * time.Millisecond,
		Multiplier: mult,
		Jitter:     jitter,
	}, nil
}
