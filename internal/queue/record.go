package queue

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Record is everything jobforge knows about one job.
type Record struct {
	ID           string
	Type         string
	Queue        string
	State        State
	Payload      json.RawMessage
	Labels       map[string]string
	MaxAttempts  int
	Attempts     int
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
}

// Hash field names of a job record.
const (
	fType        = "type"
	fQueue       = "queue"
	fState       = "state"
	fPayload     = "payload"
	fLabels      = "labels"
	fMaxAttempts = "max_attempts"
	fAttempts    = "attempts"
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
func decodeRecord(id string, h map[string]string, now time.Time) (*Record, error) {
	r := &Record{
		ID:           id,
		Type:         h[fType],
		Queue:        h[fQueue],
		State:        State(h[fState]),
		Payload:      json.RawMessage(h[fPayload]),
		MaxAttempts:  atoi(h[fMaxAttempts]),
		Attempts:     atoi(h[fAttempts]),
		Timeout:      time.Duration(atoi(h[fTimeoutMS])) * time.Millisecond,
		CreateTime:   parseMicros(h[fCreate]),
		ScheduleTime: parseMicros(h[fSchedule]),
		StartTime:    parseMicros(h[fStart]),
		EndTime:      parseMicros(h[fEnd]),
		UpdateTime:   parseMicros(h[fUpdate]),
		ExpireTime:   parseMicros(h[fExpire]),
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
	if r.State == StateScheduled && !r.ScheduleTime.After(now) {
		r.State = StatePending
	}
	return r, nil
}
