package proctest

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"testing"

	"go.uber.org/goleak"
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

// MainWith is TestMain for packages whose examples need processes up:
// start runs with a MainTB before the tests and examples, its cleanups
// after them, then goroutine leaks are checked. In -short mode start does
// not run and the examples are skipped (tests that need the processes skip
// themselves). what names the processes in the message printed when start
// fails.
func MainWith(m *testing.M, what string, start func(testing.TB)) {
	flag.Parse()
	if testing.Short() {
		skip := "^Example"
		if old := flag.Lookup("test.skip").Value.String(); old != "" {
			skip += "|" + old
		}
		if err := flag.Set("test.skip", skip); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	goleak.VerifyTestMain(withProcesses{m, what, start})
}

type withProcesses struct {
	m     *testing.M
	what  string
	start func(testing.TB)
}

func (w withProcesses) Run() int {
	if testing.Short() {
		return w.m.Run()
	}
	env := &MainTB{}
	defer func() {
		env.CleanupAll()
		if buildDir != "" {
			_ = os.RemoveAll(buildDir)
		}
	}()
	if !env.Run(w.start) {
		fmt.Fprintf(os.Stderr, "%s did not start\n", w.what)
		return 1
	}
	return w.m.Run()
}
