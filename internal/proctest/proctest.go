// Package proctest builds jobforge's programs and runs them as real
// processes in tests: system, CLI and browser tests drive the binaries the
// way a user or an orchestrator would.
package proctest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/freeport"
	"github.com/jobforge/jobforge/internal/redistest"
)

var (
	buildMu  sync.Mutex
	buildDir string
	built    = map[string]error{} // build flags+package → result
)

// Main runs the tests with redistest.Run (shared redis-server, goroutine
// leak check) and then removes the binaries Build made.
func Main(m *testing.M) {
	code := redistest.Run(m)
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// Build compiles main packages given relative to the module root (e.g.
// "./cmd/api"), once per test binary, and returns the path of each binary
// by its base name. race adds the race detector. Use Main in TestMain so
// the binaries are removed afterwards.
func Build(t testing.TB, race bool, pkgs ...string) map[string]string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the real programs; skipped in -short mode")
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir == "" {
		d, err := os.MkdirTemp("", "jobforge-bin-")
		require.NoError(t, err)
		buildDir = d
	}
	variant := "plain"
	if race {
		variant = "race"
	}
	dir := filepath.Join(buildDir, variant)
	out := map[string]string{}
	for _, pkg := range pkgs {
		key := variant + " " + pkg
		err, done := built[key]
		if !done {
			// -pgo=off: the profiles in cmd/*/default.pgo only speed
			// up the shipped build; here they would only slow this one.
			args := []string{"build", "-pgo=off", "-o", dir + "/"}
			if race {
				args = append(args, "-race")
			}
			cmd := exec.Command("go", append(args, pkg)...)
			cmd.Dir = ModuleRoot(t)
			if b, cerr := cmd.CombinedOutput(); cerr != nil {
				err = fmt.Errorf("go build %s: %v\n%s", pkg, cerr, b)
			}
			built[key] = err
		}
		require.NoError(t, err)
		out[filepath.Base(pkg)] = filepath.Join(dir, filepath.Base(pkg))
	}
	return out
}

// ModuleRoot returns the module root above the test's working directory.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, parent, dir, "go.mod not found above the test's directory")
		dir = parent
	}
}

// Process is a running program whose JSON log lines (stderr) and stdout
// are collected.
type Process struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []map[string]any
	raw    []string // every stderr line as written
	stdout strings.Builder
	exited chan struct{}
	err    error
}

// Start runs bin with env added to the test's environment and waits until
// it logs a line whose msg is ready. Lines above INFO (and all lines with
// -v) go to the test log. The process is killed when the test ends.
func Start(t testing.TB, bin string, env []string, ready string, args ...string) *Process {
	t.Helper()
	return StartWith(t, Options{}, bin, env, ready, args...)
}

// Options tune StartWith.
type Options struct {
	// Quiet keeps the process's output out of the test log (Stderr still
	// has it): fault tests run workers at debug level through thousands of
	// jobs and Redis outages, and keep the logs of failed runs elsewhere.
	Quiet bool
	// Dir is the working directory (default: the test's). Dev mode keeps
	// its key in .jobforge/ there, as `make run` does in the checkout.
	Dir string
}

// StartWith is Start with options.
func StartWith(t testing.TB, opts Options, bin string, env []string, ready string, args ...string) *Process {
	t.Helper()
	p := &Process{cmd: exec.Command(bin, args...), exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Dir = opts.Dir
	stderr, err := p.cmd.StderrPipe()
	require.NoError(t, err)
	stdout, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	name := filepath.Base(bin)
	readyCh := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.raw = append(p.raw, sc.Text())
			p.mu.Unlock()
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				if !opts.Quiet {
					t.Logf("%s: %s", name, sc.Text())
				}
				continue
			}
			if lvl, _ := m["level"].(string); !opts.Quiet && (testing.Verbose() || (lvl != "INFO" && lvl != "DEBUG")) {
				t.Logf("%s: %s", name, sc.Text())
			}
			p.mu.Lock()
			p.lines = append(p.lines, m)
			p.mu.Unlock()
			if m["msg"] == ready {
				select {
				case readyCh <- struct{}{}:
				default:
				}
			}
		}
	}()
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.stdout.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	go func() { wg.Wait(); p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(p.Kill)
	select {
	case <-readyCh:
	case <-p.exited:
		t.Fatalf("%s exited before it was ready: %v", bin, p.err)
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not log %q within 60s", bin, ready)
	}
	return p
}

// Field returns a string field of the first log line with the given msg.
func (p *Process) Field(msg, key string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.lines {
		if v, ok := m[key]; ok && m["msg"] == msg {
			return fmt.Sprint(v)
		}
	}
	return ""
}

// Lines returns the JSON log lines read so far.
func (p *Process) Lines() []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]map[string]any(nil), p.lines...)
}

// Stderr is every line the process wrote to stderr so far, as written.
func (p *Process) Stderr() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.raw...)
}

// Output is what the process wrote to stdout so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String()
}

// Done is closed once the process has exited and its output is read.
func (p *Process) Done() <-chan struct{} { return p.exited }

// ExitErr is how the process ended (nil for a clean exit); call it after
// Done is closed.
func (p *Process) ExitErr() error {
	<-p.exited
	return p.err
}

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Signal sends sig to the process without waiting for it.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop sends SIGTERM and requires a clean exit within timeout.
func (p *Process) Stop(t testing.TB, timeout time.Duration) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.exited:
		require.NoError(t, p.err, "exit status after SIGTERM")
	case <-time.After(timeout):
		t.Fatalf("process did not exit within %s of SIGTERM", timeout)
	}
}

// Kill stops the process at once (SIGKILL) and waits for it.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freeport.Loopback()
	require.NoError(t, err)
	return p
}
