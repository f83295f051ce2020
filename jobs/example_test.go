package jobs_test

import (
	"context"
	"fmt"

	"github.com/jobforge/jobforge/jobs"
	"github.com/jobforge/jobforge/jobs/jobstest"
)

// A job type is one value built with Define; its handler gets a typed,
// already validated payload.
func ExampleDefine() {
	type greetPayload struct {
		Name string `json:"name"`
	}
	greet := jobs.Define(jobs.Spec[greetPayload, string]{
		Name:        "greet",
		Description: "Says hello.",
		Example:     greetPayload{Name: "Ada"},
		Handle: func(ctx context.Context, job *jobs.Job, p greetPayload) (string, error) {
			_ = job.Progress(ctx, 100, "greeted")
			return "hello, " + p.Name, nil
		},
	})
	out, err := jobstest.Run(context.Background(), greet, `{"name":"Grace"}`, 1)
	fmt.Println(string(out.Result), err, out.Progress)
	// Output: "hello, Grace" <nil> [{100 greeted}]
}
