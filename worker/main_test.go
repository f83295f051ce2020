package worker_test

import (
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jobforge/jobforge/internal/proctest"
	"github.com/jobforge/jobforge/internal/redistest"
)

// TestMain starts what the examples run next to, as a deployment would: a
// redis-server of their own and the stock API (cmd/api, no job code, no
// authentication). The examples read REDIS_URL and JOBFORGE_ADDR like a
// program would. In -short mode nothing starts and the examples are
// skipped.
func TestMain(m *testing.M) {
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
	goleak.VerifyTestMain(withStack{m})
}

type withStack struct{ m *testing.M }

func (w withStack) Run() int {
	if testing.Short() {
		return w.m.Run()
	}
	env := &proctest.MainTB{}
	defer env.CleanupAll()
	if !env.Run(startStack) {
		fmt.Fprintln(os.Stderr, "worker tests: redis-server and the API did not start")
		return 1
	}
	return w.m.Run()
}

func startStack(t testing.TB) {
	srv := redistest.NewServer(t)
	api := proctest.Build(t, false, "./cmd/api")["api"]
	t.Cleanup(func() { _ = os.RemoveAll(api) })
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
