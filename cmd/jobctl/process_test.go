package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Building and starting the real binaries, as test/system does.

// binaries builds cmd/api and cmd/worker (with -race) into a directory
// that is removed when t ends.
func binaries(t *testing.T) (api, worker string) {
	t.Helper()
	if testing.Short() {
		t.Skip("system test; skipped in -short mode")
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-race", "-o", dir+"/", "./cmd/api", "./cmd/worker")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return filepath.Join(dir, "api"), filepath.Join(dir, "worker")
}

// process is a running jobforge binary whose JSON log lines are collected.
type process struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []map[string]any
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
	require.NoError(t, p.cmd.Start())
	readyCh := make(chan struct{}, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			if lvl, _ := m["level"].(string); lvl != "INFO" && lvl != "DEBUG" {
				t.Logf("%s: %s", filepath.Base(bin), sc.Text())
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
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.kill)
	select {
	case <-readyCh:
	case <-p.exited:
		t.Fatalf("%s exited before it was ready: %v", bin, p.err)
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not log %q within 60s", bin, ready)
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

// kill stops the process at once (SIGKILL) and waits for it.
func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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
