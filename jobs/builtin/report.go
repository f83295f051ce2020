package builtin

import (
	"github.com/jobforge/jobforge/jobs"

	"context"
	"fmt"
	"time"
	"unicode/utf8"
)

// ReportPayload describes a report built from Pages pages, each taking
// PageMillis milliseconds to fetch.
type ReportPayload struct {
	Title      string `json:"title" jsonschema:"maxLength=200,description=Report title"`
	Pages      int    `json:"pages" jsonschema:"required,minimum=1,maximum=10000,description=Number of pages (steps)"`
	PageMillis int    `json:"page_millis" jsonschema:"minimum=0,maximum=60000,description=Time each page takes in milliseconds"`
}

// Validate implements the payload rules.
func (p *ReportPayload) Validate() error {
	var v jobs.ValidationError
	// Characters, as the schema's maxLength counts them, not bytes.
	if n := utf8.RuneCountInString(p.Title); n > 200 {
		v.Violations = append(v.Violations, jobs.FieldViolation{Field: "title", Description: fmt.Sprintf("must be at most 200 characters, got %d", n)})
	}
	if p.Pages < 1 || p.Pages > 10_000 {
		v.Violations = append(v.Violations, jobs.FieldViolation{Field: "pages", Description: fmt.Sprintf("must be between 1 and 10000, got %d", p.Pages)})
	}
	if p.PageMillis < 0 || p.PageMillis > 60_000 {
		v.Violations = append(v.Violations, jobs.FieldViolation{Field: "page_millis", Description: fmt.Sprintf("must be between 0 and 60000, got %d", p.PageMillis)})
	}
	if len(v.Violations) > 0 {
		return &v
	}
	return nil
}

// ReportResult summarises the finished report. Checksum is the sum of the
// squares of the page numbers 1..Pages, so callers can verify the job did
// every step: Pages*(Pages+1)*(2*Pages+1)/6.
type ReportResult struct {
	Title    string `json:"title"`
	Pages    int    `json:"pages"`
	Checksum int64  `json:"checksum"`
}

// Report is the long-running built-in type: it works through many steps
// (waiting like an export or crawl waits on I/O), reports progress after
// each, and honours cancellation between and during steps.
var Report = jobs.Define(jobs.Spec[ReportPayload, ReportResult]{
	Name:        "report",
	Description: "Builds a report page by page, reporting progress after each page (long-running, I/O-shaped).",
	Queue:       jobs.QueueDefault,
	Timeout:     time.Hour,
	MaxAttempts: 3,
	Example:     ReportPayload{Title: "Quarterly numbers", Pages: 10, PageMillis: 300},
	Handle: func(ctx context.Context, job *jobs.Job, p ReportPayload) (ReportResult, error) {
		timer := time.NewTimer(0)
		defer timer.Stop()
		<-timer.C
		var sum int64
		for page := 1; page <= p.Pages; page++ {
			timer.Reset(time.Duration(p.PageMillis) * time.Millisecond)
			select {
			case <-ctx.Done():
				return ReportResult{}, ctx.Err()
			case <-timer.C:
			}
			sum += int64(page) * int64(page)
			_ = job.Progress(ctx, page*100/p.Pages, fmt.Sprintf("page %d of %d", page, p.Pages))
		}
		return ReportResult{Title: p.Title, Pages: p.Pages, Checksum: sum}, nil
	},
})
