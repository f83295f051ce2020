package system_test

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
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds cmd/api and cmd/worker once per test run.
func binaries(t *testing.T) (api, worker string) {
	t.Helper()
	if testing.Short() {
		t.Skip("system test; skipped in -short mode")
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "jobforge-system-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-race", "-o", binDir+"/", "./cmd/api", "./cmd/worker")
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return filepath.Join(binDir, "api"), filepath.Join(binDir, "worker")
}

// process is a running jobforge binary whose JSON log lines are collected.
type process struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []map[string]any
	stdout strings.Builder
	exited chan struct{}
	err    error
}

// start runs bin and waits for the log line with msg == ready.
func start(t *testing.T, bin string, env []string, ready string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...), exited: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	stderr, err := p.cmd.StderrPipe()
	require.NoError(t, err)
	stdout, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	readyCh := make(chan map[string]any, 1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			t.Logf("%s: %s", filepath.Base(bin), line)
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) != nil {
				continue
			}
			p.mu.Lock()
			p.lines = append(p.lines, m)
			p.mu.Unlock()
			if m["msg"] == ready {
				select {
				case readyCh <- m:
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
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	select {
	case m := <-readyCh:
		p.mu.Lock()
		p.lines = append(p.lines, m)
		p.mu.Unlock()
	case <-p.exited:
		t.Fatalf("%s exited before it was ready: %v", bin, p.err)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not log %q within 30s", bin, ready)
	}
	return p
}

// field returns a field of the first log line with the given msg.
func (p *process) field(msg, key string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.lines {
		if m["msg"] == msg {
			s, _ := m[key].(string)
			return s
		}
	}
	return ""
}

func (p *process) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String()
}

// stop sends SIGTERM and requires a clean exit within timeout.
func (p *process) stop(t *testing.T, timeout time.Duration) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.exited:
		require.NoError(t, p.err, "exit status after SIGTERM")
	case <-time.After(timeout):
		t.Fatalf("process did not exit within %s of SIGTERM", timeout)
	}
}
