package worker_test

import (
	"os"
	"testing"
	"time"

	"github.com/jobforge/jobforge/internal/proctest"
	"github.com/jobforge/jobforge/internal/redistest"
)

// TestMain starts what the examples run next to, as a deployment would: a
// redis-server of their own and the stock API (cmd/api, no job code, no
// authentication). The examples read REDIS_URL and JOBFORGE_ADDR like a
// program would. In -short mode nothing starts and the examples are
// skipped.
func TestMain(m *testing.M) {
	proctest.MainWith(m, "worker tests: redis-server and the API", startStack)
}

func startStack(t testing.TB) {
	srv := redistest.NewServer(t)
	api := proctest.Build(t, false, "./cmd/api")["api"]
	p := proctest.StartWith(t, proctest.Options{Quiet: true}, api,
		[]string{"REDIS_URL=" + srv.URL(0), "JOBFORGE_AUTH_DISABLED=true", "JOBFORGE_LOG_FORMAT=json"},
		"api started", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0")
	t.Cleanup(func() { p.Stop(t, 30*time.Second) })
	for k, v := range map[string]string{"REDIS_URL": srv.URL(0), "JOBFORGE_ADDR": p.Field("api started", "grpc_addr")} {
		if err := os.Setenv(k, v); err != nil {
			t.Fatalf("%v", err)
		}
	}
}
