package builtin_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jobforge/jobforge/jobs"
	"github.com/jobforge/jobforge/jobs/builtin"
)

// FuzzValidatePayload: payload validation of every built-in type never
// panics, and a payload it accepts decodes again when the job runs.
func FuzzValidatePayload(f *testing.F) {
	for _, t := range builtin.Types() {
		f.Add(t.Name(), string(t.Example()))
	}
	f.Add("primes", `{"limit":-1}`)
	f.Add("report", `{"pages":1e9}`)
	f.Add("simulate", `{"outcome":"fail","permanent":true,"result":[1,{"a":null}]}`)
	f.Add("simulate", `{"duration_millis":1.5}`)
	reg, err := jobs.NewRegistry(builtin.Types()...)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name, payload string) {
		typ, ok := reg.Lookup(name)
		if !ok {
			return
		}
		if err := typ.Validate([]byte(payload)); err != nil {
			return
		}
		// Run with a cancelled context: decoding must succeed, and the
		// handler must stop at once instead of doing the work.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := typ.Run(ctx, jobs.NewJob("f", name, 1, 1, nil), []byte(payload))
		var ve *jobs.ValidationError
		if errors.As(err, &ve) {
			t.Fatalf("accepted payload fails to decode at run time: %v", err)
		}
	})
}
