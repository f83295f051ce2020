// Package wordcount is a job type kept in its own module, outside
// jobforge: it counts the words of a text, reporting progress as it goes.
//
// It is the whole of what a team writes to run its own jobs on jobforge:
// this type, a worker main (cmd/wordcount-worker) and, for a Go service
// that submits jobs, the client (cmd/wordcount-submit). The stock jobforge
// API accepts "wordcount" jobs as soon as the worker has started: the
// worker publishes the type's payload JSON Schema, which the API validates
// against.
package wordcount

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/jobforge/jobforge/jobs"
)

// Payload is the text to count, and how long to pause between chunks of
// it (to make progress visible in a demo).
type Payload struct {
	Text       string `json:"text" jsonschema:"required,minLength=1,maxLength=100000,description=The text whose words are counted"`
	PauseMilli int    `json:"pause_ms,omitempty" jsonschema:"minimum=0,maximum=10000,description=Pause after each chunk of 1000 characters"`
}

// Validate rejects what the schema rejects, for payloads that reach the
// handler without the API (jobstest, or a worker of an older version).
func (p *Payload) Validate() error {
	switch n := len([]rune(p.Text)); {
	case n == 0:
		return jobs.Invalid("text", "required")
	case n > 100_000:
		return jobs.Invalid("text", "must be at most 100000 characters long, got %d", n)
	}
	if p.PauseMilli < 0 || p.PauseMilli > 10_000 {
		return jobs.Invalid("pause_ms", "must be between 0 and 10000, got %d", p.PauseMilli)
	}
	return nil
}

// Result is the count and the most frequent word.
type Result struct {
	Words   int    `json:"words"`
	Longest string `json:"longest"`
}

// chunk is how many characters are counted between progress reports.
const chunk = 1000

// Type is the wordcount job type.
var Type = jobs.Define(jobs.Spec[Payload, Result]{
	Name:        "wordcount",
	Description: "Counts the words of a text and finds the longest; reports progress per 1000 characters.",
	Timeout:     time.Minute,
	MaxAttempts: 3,
	Example:     Payload{Text: "the quick brown fox"},
	Handle: func(ctx context.Context, job *jobs.Job, p Payload) (Result, error) {
		var res Result
		text := []rune(p.Text)
		inWord := false
		word := 0
		for start := 0; start < len(text); start += chunk {
			end := min(start+chunk, len(text))
			for i, r := range text[start:end] {
				if unicode.IsSpace(r) {
					inWord = false
					continue
				}
				if !inWord {
					res.Words++
					inWord, word = true, start+i
				}
				if w := string(text[word : start+i+1]); len([]rune(w)) > len([]rune(res.Longest)) {
					res.Longest = strings.Clone(w)
				}
			}
			_ = job.Progress(ctx, end*100/len(text), fmt.Sprintf("%d of %d characters", end, len(text)))
			if err := pause(ctx, time.Duration(p.PauseMilli)*time.Millisecond); err != nil {
				return Result{}, err // cancelled or timed out: stop at once
			}
		}
		return res, nil
	},
})

func pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
