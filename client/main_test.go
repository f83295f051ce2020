package client_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/client"
	"github.com/jobforge/jobforge/internal/proctest"
)

// devServer is the program the examples and tests run against: the
// all-in-one development server (the API, an embedded store and an
// in-process worker with the built-in job types), started in a directory
// of its own where it writes its key. Another binary is one line here.
var devServer = devCommand{pkg: "./cmd/jobforge-dev", ready: "api started"}

// devCommand is how to build and start the development server.
type devCommand struct {
	pkg   string   // main package, relative to the module root
	args  []string // besides the listen addresses
	ready string   // msg of the log line that says it serves, with grpc_addr
}

// server is the running development server: its gRPC address and the key
// it accepts. Empty in -short mode.
var server struct{ addr, token string }

// TestMain starts the development server once for the package (the
// examples, which take no *testing.T, need it too), runs the tests and the
// examples, stops it and checks for leaked goroutines. In -short mode no
// server is started, the examples are skipped and the tests that need it
// skip themselves.
func TestMain(m *testing.M) {
	proctest.MainWith(m, "client tests: the development server", func(t testing.TB) {
		startServer(t)
		// The examples read them, as a program would.
		for k, v := range map[string]string{"JOBFORGE_ADDR": server.addr, "JOBFORGE_TOKEN": server.token} {
			if err := os.Setenv(k, v); err != nil {
				t.Fatalf("%v", err)
			}
		}
	})
}

// startServer builds devServer and starts it on free loopback ports.
func startServer(t testing.TB) {
	bins, err := os.MkdirTemp("", "jobforge-client-test-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(bins) })
	build := exec.Command("go", "build", "-o", bins+string(filepath.Separator), devServer.pkg)
	build.Dir = proctest.ModuleRoot(t)
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build %s\n%s", devServer.pkg, out)
	bin := filepath.Join(bins, filepath.Base(devServer.pkg))

	dir := filepath.Join(bins, "work")
	require.NoError(t, os.Mkdir(dir, 0o700))
	args := append(append([]string(nil), devServer.args...),
		"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0")
	p := proctest.StartWith(t, proctest.Options{Dir: dir}, bin,
		[]string{"REDIS_URL=", "JOBFORGE_DEV_KEY=", "JOBFORGE_LOG_FORMAT=json"}, devServer.ready, args...)
	t.Cleanup(func() { p.Stop(t, 30*time.Second) })
	server.addr = p.Field(devServer.ready, "grpc_addr")
	key, err := os.ReadFile(filepath.Join(dir, ".jobforge", "dev-key"))
	require.NoError(t, err, "the development server's key")
	server.token = strings.TrimSpace(string(key))
}

// needServer skips the test in -short mode, where no server runs.
func needServer(t *testing.T) {
	t.Helper()
	if server.addr == "" {
		t.Skip("needs the development server; skipped in -short mode")
	}
}

// dial returns a client of the development server with its key.
func dial(t *testing.T, opts ...client.Option) *client.Client {
	t.Helper()
	needServer(t)
	return dialAt(t, server.addr, append([]client.Option{client.WithToken(server.token)}, opts...)...)
}

// dialAt returns a plaintext client of addr, closed when the test ends.
func dialAt(t *testing.T, addr string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.Dial(t.Context(), addr, append([]client.Option{client.WithInsecure()}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// testContext bounds a test's calls, so that a watch that never ends
// fails the test instead of hanging it.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
