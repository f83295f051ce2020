package jobstest_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/jobforge/jobforge/jobs"
	"github.com/jobforge/jobforge/jobs/jobstest"
)

type shoutPayload struct {
	Words []string `json:"words" jsonschema:"required,minItems=1"`
}

var shout = jobs.Define(jobs.Spec[shoutPayload, string]{
	Name:    "shout",
	Example: shoutPayload{Words: []string{"hello"}},
	Handle: func(ctx context.Context, job *jobs.Job, p shoutPayload) (string, error) {
		out := make([]string, len(p.Words))
		for i, w := range p.Words {
			out[i] = strings.ToUpper(w)
			_ = job.Progress(ctx, (i+1)*100/len(p.Words), "shouted "+w)
		}
		return strings.Join(out, " "), nil
	},
})

// A unit test of a handler runs one attempt in-process, with the payload as
// the API would pass it, and checks the result and the progress reports.
func ExampleRun() {
	out, err := jobstest.Run(context.Background(), shout, `{"words":["hello","world"]}`, 1)
	if err != nil {
		fmt.Println("failed:", err)
		return
	}
	fmt.Println(string(out.Result))
	for _, u := range out.Progress {
		fmt.Println(u.Percent, u.Message)
	}

	// A payload the type refuses fails before the handler runs.
	_, err = jobstest.Run(context.Background(), shout, `{"words":"hello"}`, 1)
	fmt.Println(err)
	// Output:
	// "HELLO WORLD"
	// 50 shouted hello
	// 100 shouted world
	// invalid payload: words: must be an array, got string
}
