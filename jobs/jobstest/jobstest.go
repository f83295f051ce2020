// Package jobstest makes testing a job handler a few lines: run one attempt
// of a job type in-process and inspect its result and progress reports.
package jobstest

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/jobforge/jobforge/jobs"
)

// Update is one progress report.
type Update struct {
	Percent int
	Message string
}

// Outcome is what one attempt produced.
type Outcome struct {
	Result   json.RawMessage
	Progress []Update
}

// Recorder is a jobs.Reporter that keeps every report.
type Recorder struct {
	mu      sync.Mutex
	updates []Update
}

// ReportProgress implements jobs.Reporter.
func (r *Recorder) ReportProgress(_ context.Context, percent int, message string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updates = append(r.updates, Update{Percent: percent, Message: message})
	return nil
}

// Updates returns the reports so far.
func (r *Recorder) Updates() []Update {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Update(nil), r.updates...)
}

// Run executes attempt number attempt (1-based) of typ with a JSON payload,
// as a worker would, and returns the result and progress reports.
func Run(ctx context.Context, typ *jobs.Type, payload string, attempt int) (Outcome, error) {
	var rec Recorder
	job := jobs.NewJob("test-job", typ.Name(), attempt, typ.MaxAttempts(), &rec)
	res, err := typ.Run(ctx, job, []byte(payload))
	return Outcome{Result: res, Progress: rec.Updates()}, err
}
