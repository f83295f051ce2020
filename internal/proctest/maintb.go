package proctest

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"
)

// MainTB is a testing.TB for TestMain, for the helpers that take one
// (Build, StartWith, redistest, require) when processes must be up before
// m.Run: examples take no *testing.T but need a server. A failure is
// printed and ends the function given to Run, Logf prints to stderr, and
// cleanups (TempDir's included) run when CleanupAll is called. Only the
// methods below may be called.
type MainTB struct {
	testing.TB // nil

	mu       sync.Mutex
	failed   bool
	cleanups []func()
}

// Run calls fn with t and reports whether nothing failed. fn runs on a
// goroutine of its own, so that FailNow can end it.
func (t *MainTB) Run(fn func(testing.TB)) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(t)
	}()
	<-done
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.failed
}

// CleanupAll runs the registered cleanups, the last registered first.
func (t *MainTB) CleanupAll() {
	for {
		t.mu.Lock()
		if len(t.cleanups) == 0 {
			t.mu.Unlock()
			return
		}
		f := t.cleanups[len(t.cleanups)-1]
		t.cleanups = t.cleanups[:len(t.cleanups)-1]
		t.mu.Unlock()
		t.Run(func(testing.TB) { f() })
	}
}

func (t *MainTB) Helper() {}

func (t *MainTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (t *MainTB) TempDir() string {
	dir, err := os.MkdirTemp("", "jobforge-test-")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func (t *MainTB) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

func (t *MainTB) Errorf(format string, args ...any) {
	t.Logf(format, args...)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed = true
}

func (t *MainTB) FailNow() { runtime.Goexit() }

func (t *MainTB) Fatalf(format string, args ...any) {
	t.Errorf(format, args...)
	t.FailNow()
}
