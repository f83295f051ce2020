package main

import (
	"bytes"
	"sync"
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

// syncBuffer is a bytes.Buffer that a running command writes to while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
