package builtin

import (
	"github.com/jobforge/jobforge/jobs"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SimulatePayload controls the outcome of a simulate job.
type SimulatePayload struct {
	// Outcome is "succeed" (default), "fail", "panic" (the handler panics)
	// or "crash" (the worker process exits at once, as an out-of-memory
	// kill would; only on workers started with -allow-crash-jobs, elsewhere
	// the attempt fails permanently).
	Outcome string `json:"outcome,omitempty" jsonschema:"enum=succeed,enum=fail,enum=panic,enum=crash,description=Final outcome once fail_times is used up: succeed; fail; panic (the handler panics); crash (the worker process exits at once; only where the worker allows crash jobs)"`
	// FailTimes makes the first FailTimes attempts fail before Outcome applies.
	FailTimes int `json:"fail_times,omitempty" jsonschema:"minimum=0,maximum=100"`
	// Message is the error text of failing attempts.
	Message string `json:"message,omitempty" jsonschema:"maxLength=1000"`
	// Permanent marks the final failure as not retryable.
	Permanent bool `json:"permanent,omitempty"`
	// DurationMillis is how long each attempt works before it ends.
	DurationMillis int `json:"duration_millis,omitempty" jsonschema:"minimum=0,maximum=3600000"`
	// Result is echoed back on success.
	Result json.RawMessage `json:"result,omitempty"`
}

// Validate implements the payload rules.
func (p *SimulatePayload) Validate() error {
	var v jobs.ValidationError
	switch p.Outcome {
	case "", "succeed", "fail", "panic", "crash":
	default:
		v.Violations = append(v.Violations, jobs.FieldViolation{Field: "outcome", Description: fmt.Sprintf(`must be "succeed", "fail", "panic" or "crash", got %q`, p.Outcome)})
	}
	if p.FailTimes < 0 || p.FailTimes > 100 {
		v.Violations = append(v.Violations, jobs.FieldViolation{Field: "fail_times", Description: fmt.Sprintf("must be between 0 and 100, got %d", p.FailTimes)})
	}
	if len(p.Message) > 1000 {
		v.Violations = append(v.Violations, jobs.FieldViolation{Field: "message", Description: "must be at most 1000 bytes"})
	}
	if p.DurationMillis < 0 || p.DurationMillis > 3_600_000 {
		v.Violations = append(v.Violations, jobs.FieldViolation{Field: "duration_millis", Description: fmt.Sprintf("must be between 0 and 3600000, got %d", p.DurationMillis)})
	}
	if len(v.Violations) > 0 {
		return &v
	}
	return nil
}

// SimulateResult reports which attempt succeeded and echoes the payload's result.
type SimulateResult struct {
	Attempt int             `json:"attempt"`
	Echo    json.RawMessage `json:"echo,omitempty"`
}

// Simulate is the built-in type whose outcome the payload controls, so that
// success, failure, retries and permanent errors can be exercised end to end.
var Simulate = jobs.Define(jobs.Spec[SimulatePayload, SimulateResult]{
	Name:        "simulate",
	Description: "Succeeds, fails, panics or crashes its worker, after failing `fail_times` attempts first, as the payload says; for exercising retries, failures and fault handling.",
	Queue:       jobs.QueueDefault,
	Timeout:     time.Hour,
	MaxAttempts: 5,
	Example:     SimulatePayload{Outcome: "succeed", Result: json.RawMessage(`{"ok":true}`)},
	Handle: func(ctx context.Context, job *jobs.Job, p SimulatePayload) (SimulateResult, error) {
		if p.DurationMillis > 0 {
			t := time.NewTimer(time.Duration(p.DurationMillis) * time.Millisecond)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return SimulateResult{}, ctx.Err()
			case <-t.C:
			}
		}
		msg := p.Message
		if msg == "" {
			msg = "simulated failure"
		}
		if job.Attempt <= p.FailTimes {
			return SimulateResult{}, fmt.Errorf("%s (attempt %d of %d planned failures)", msg, job.Attempt, p.FailTimes)
		}
		switch p.Outcome {
		case "fail":
			err := errors.New(msg)
			if p.Permanent {
				err = jobs.Permanent(err)
			}
			return SimulateResult{}, err
		case "panic":
			panic("simulated panic: " + msg)
		case "crash":
			return SimulateResult{}, jobs.Permanent(job.Crash())
		}
		return SimulateResult{Attempt: job.Attempt, Echo: p.Result}, nil
	},
})
