package system_test

import (
	"testing"

	"github.com/jobforge/jobforge/internal/proctest"
)

// binaries builds cmd/api and cmd/worker with the race detector, once per
// test run.
func binaries(t *testing.T) (api, worker string) {
	t.Helper()
	b := proctest.Build(t, true, "./cmd/api", "./cmd/worker")
	return b["api"], b["worker"]
}

// devBinary builds cmd/jobforge-dev (API, in-process worker and embedded
// store in one process: `make run`) with the race detector.
func devBinary(t *testing.T) string {
	t.Helper()
	return proctest.Build(t, true, "./cmd/jobforge-dev")["jobforge-dev"]
}
