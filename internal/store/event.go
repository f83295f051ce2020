package store

import (
	"encoding/json"
	"time"
)

// EventKind says what an Event reports.
type EventKind int

// Event kinds.
const (
	EventSnapshot EventKind = iota + 1
	EventState
	EventProgress
)

// Event is one entry of a job's event stream.
type Event struct {
	ID       string // stream entry id; increasing
	Kind     EventKind
	Time     time.Time
	State    State
	Attempt  int
	Progress Progress
	Result   json.RawMessage
	Error    *AttemptError
	Snapshot *Record // EventSnapshot only
}
