// Package redistest runs real redis-server processes for tests: never a
// mock, never the developer's own Redis. Each test gets an isolated
// database on a server the test binary started on a free loopback port.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jobforge/jobforge/internal/freeport"
)

// databases is how many isolated databases the shared server offers; each
// NewDB call takes the next one.
const databases = 4096

var (
	shared     *Server
	sharedErr  error
	sharedOnce sync.Once
	nextDB     atomic.Int64
)

// Main runs the package's tests, stops the shared server, and then checks
// for leaked goroutines. Use it as the body of TestMain.
func Main(m *testing.M, opts ...goleak.Option) {
	os.Exit(Run(m, opts...))
}

// Run is Main without the exit: it returns the exit code, for TestMain
// functions that have more to clean up.
func Run(m *testing.M, opts ...goleak.Option) int {
	code := m.Run()
	if shared != nil {
		shared.Stop()
	}
	if code == 0 {
		// Goroutines may take a moment to end: after a failed dial (tests
		// that stop Redis) go-redis redials once a second in the background
		// and only then notices that its pool was closed.
		err := goleak.Find(opts...)
		for deadline := time.Now().Add(3 * time.Second); err != nil && time.Now().Before(deadline); {
			err = goleak.Find(opts...)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "goleak: leaked goroutines:", err)
			code = 1
		}
	}
	return code
}

// NewDB returns the URL of an empty database of this test binary's shared
// redis-server (started on first use).
func NewDB(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs redis-server; skipped in -short mode")
	}
	sharedOnce.Do(func() { shared, sharedErr = start("") })
	if sharedErr != nil {
		tb.Fatalf("redistest: %v", sharedErr)
	}
	db := nextDB.Add(1)
	if db >= databases {
		tb.Fatalf("redistest: more than %d databases requested", databases)
	}
	return shared.URL(int(db))
}

// Server is a redis-server child process.
type Server struct {
	port     int
	dir      string
	durable  bool
	extra    []string // more redis-server arguments
	sentinel string   // config file of a sentinel; empty for a Redis server
	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has exited
}

// ServerOption configures NewServer.
type ServerOption func(*Server)

// Durable makes the server keep an append-only file in the test's temp
// dir, fsynced before every reply (appendonly yes, appendfsync always):
// whatever Redis acknowledged survives Stop (kill -9) and Terminate, and
// Start on the same port reloads it, as a server configured for
// durability does in production.
func Durable() ServerOption { return func(s *Server) { s.durable = true } }

// Args passes more arguments to redis-server, e.g. "--requirepass", "pw".
func Args(args ...string) ServerOption {
	return func(s *Server) { s.extra = append(s.extra, args...) }
}

// NewServer starts a dedicated redis-server for tests that stop and restart
// it; it is stopped when the test ends.
func NewServer(tb testing.TB, opts ...ServerOption) *Server {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs redis-server; skipped in -short mode")
	}
	s, err := start(tb.TempDir(), opts...)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

func start(dir string, opts ...ServerOption) (*Server, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, fmt.Errorf("redis-server not found on PATH: run `make deps` (Debian package redis-server)")
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "redistest-")
		if err != nil {
			return nil, err
		}
		dir = d
	}
	var lastErr error
	for range 5 {
		port, err := freeport.Loopback()
		if err != nil {
			return nil, err
		}
		s := &Server{port: port, dir: dir}
		for _, o := range opts {
			o(s)
		}
		if lastErr = s.Start(); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

// Start (re)starts the process on the same port.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	aof := []string{"--appendonly", "no"}
	if s.durable {
		aof = []string{"--appendonly", "yes", "--appendfsync", "always"}
	}
	args := append([]string{
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--databases", strconv.Itoa(databases),
		"--dir", s.dir, "--protected-mode", "no", "--loglevel", "warning"}, aof...)
	if s.sentinel != "" {
		args = []string{s.sentinel, "--sentinel", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
			"--dir", s.dir, "--protected-mode", "no", "--loglevel", "warning"}
	}
	cmd := exec.Command("redis-server", append(args, s.extra...)...)
	logFile, err := os.Create(filepath.Join(s.dir, fmt.Sprintf("redis-%d.log", s.port)))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logFile.Close(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := ping(s.Addr()); err == nil {
			break
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logFile.Name())
			return fmt.Errorf("redis-server exited at start: %s", strings.TrimSpace(string(b)))
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server on port %d did not answer PING within 10s", s.port)
		}
	}
	s.cmd, s.exited = cmd, exited
	go func() {
		<-exited
		s.mu.Lock()
		if s.cmd == cmd {
			s.cmd = nil
		}
		s.mu.Unlock()
	}()
	return nil
}

// Stop kills the process (kill -9) and waits for it to exit. Data is lost
// unless the server is Durable; the port is kept for Start.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// Terminate asks the process to shut down (SIGTERM: Redis flushes its
// append-only file and exits) and waits up to timeout for it to exit,
// killing it after that. The port is kept for Start.
func (s *Server) Terminate(timeout time.Duration) error {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("signal redis-server: %w", err)
	}
	select {
	case <-exited:
		return nil
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("redis-server did not exit within %s of SIGTERM; killed", timeout)
	}
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is the redis:// URL of database db.
func (s *Server) URL(db int) string { return fmt.Sprintf("redis://%s/%d", s.Addr(), db) }

func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	// A server with a password answers -NOAUTH: it is up all the same.
	if !strings.HasPrefix(line, "+PONG") && !strings.HasPrefix(line, "-NOAUTH") {
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}

// Eventually polls cond every few milliseconds until it returns true or
// timeout passes, then fails the test with msg. It is the only way tests
// here wait for something asynchronous.
func Eventually(tb testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("condition not met within %s: %s", timeout, fmt.Sprintf(msg, args...))
		case <-tick.C:
		}
	}
}
