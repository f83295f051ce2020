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
