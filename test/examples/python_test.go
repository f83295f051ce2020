package examples_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/client"
	"github.com/jobforge/jobforge/internal/auth"
	"github.com/jobforge/jobforge/internal/proctest"
	"github.com/jobforge/jobforge/internal/redistest"
)

// python returns a Python 3 interpreter with grpcio and grpc_tools (the
// Debian packages python3-grpcio and python3-grpc-tools; `make deps`
// installs them).
func python(t *testing.T) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(py, "-c", "import grpc, grpc_tools").Run() == nil {
			return py
		}
	}
	t.Fatal("no python3 with grpcio and grpc_tools: run make deps (Debian: apt-get install python3-grpcio python3-grpc-tools)")
	return ""
}

const pyWorkerKey = "jfk_pyworker.examples-test-worker-secret-0123"

// TestPythonWorker runs examples/python-wordcount, a worker written in
// Python against the worker protocol, with the stock API and worker: its
// type is accepted over REST, its progress is seen in WatchJob, its result
// read; a cancelled job stops its Python handler; and when the worker is
// killed mid-job, a second Python worker completes the job within the
// recovery bound without the crash counting as an attempt.
func TestPythonWorker(t *testing.T) {
	t.Parallel()
	py := python(t)
	root := proctest.ModuleRoot(t)
	stubs := t.TempDir()
	out, err := exec.Command(py, "-m", "grpc_tools.protoc", "-I", filepath.Join(root, "api", "proto"),
		"--python_out="+stubs, "--grpc_python_out="+stubs, "jobforge/v1/worker_service.proto").CombinedOutput()
	require.NoError(t, err, "generate the Python stubs: %s", out)

	keys, err := json.Marshal(map[string]any{"keys": []auth.Key{
		auth.HashedKey(token, "example", "acme", auth.AllScopes),
		auth.HashedKey(pyWorkerKey, "pyworker", "acme", []string{auth.ScopeWorker}),
	}})
	require.NoError(t, err)
	keyFile := filepath.Join(t.TempDir(), "keys.json")
	require.NoError(t, os.WriteFile(keyFile, keys, 0o600))
	env := []string{"REDIS_URL=" + redistest.NewDB(t), "JOBFORGE_LOG_FORMAT=json", "JOBFORGE_API_KEYS_FILE=" + keyFile}
	bins := proctest.Build(t, true, "./cmd/api", "./cmd/worker")
	api := proctest.Start(t, bins["api"], env, "api started", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0")
	gateway := proctest.Start(t, bins["worker"], env, "worker started", "-admin-addr", "127.0.0.1:0",
		"-worker-protocol-addr", "127.0.0.1:0", "-poll-interval", "5ms")
	pyEnv := []string{"PYTHONPATH=" + stubs, "JF_KEY=" + pyWorkerKey,
		"JF_WORKER_ADDR=" + gateway.Field("worker started", "worker_protocol_addr")}
	startPython := func() *proctest.Process {
		return proctest.Start(t, py, pyEnv, "connected", filepath.Join(root, "examples", "python-wordcount", "worker.py"))
	}
	first := startPython()

	baseURL := "http://" + api.Field("api started", "http_addr")
	code, body := call(t, http.MethodPost, baseURL+"/v1/jobs", `{"type":"pywordcount","payload":{"text":""}}`)
	require.Equal(t, http.StatusBadRequest, code, "the Python type's schema is enforced by the API: %s", body)
	require.Contains(t, body, `"field":"job.payload.text"`)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, api.Field("api started", "grpc_addr"), client.WithInsecure(), client.WithToken(token))
	require.NoError(t, err)
	defer c.Close()

	// Result and progress.
	text := strings.Repeat("lorem ipsum ", 300) // 3600 characters: 4 progress reports
	code, body = call(t, http.MethodPost, baseURL+"/v1/jobs", `{"type":"pywordcount","payload":{"text":"`+text+`","pause_ms":50}}`)
	require.Equal(t, http.StatusOK, code, body)
	var created struct{ Name string }
	require.NoError(t, json.Unmarshal([]byte(body), &created))
	var mu sync.Mutex
	var seen []int32
	done, err := c.Wait(ctx, created.Name, client.OnProgress(func(p *jobforgev1.Progress) {
		mu.Lock()
		seen = append(seen, p.GetPercent())
		mu.Unlock()
	}))
	require.NoError(t, err)
	require.Equal(t, jobforgev1.Job_SUCCEEDED, done.GetState(), "%v", done)
	res, err := client.Result[map[string]int](done)
	require.NoError(t, err)
	require.Equal(t, 600, res["words"])
	mu.Lock()
	require.NotEmpty(t, seen, "WatchJob showed the Python worker's progress")
	mu.Unlock()

	// Cancellation stops the Python handler.
	long := func() string {
		job, err := client.Submit(ctx, c, "pywordcount", map[string]any{"text": strings.Repeat("word ", 2000), "pause_ms": 2000})
		require.NoError(t, err)
		return strings.TrimPrefix(job.GetName(), "jobs/")
	}
	startedOn := func(p *proctest.Process, id string) bool {
		for _, l := range p.Lines() {
			if l["msg"] == "job started" && l["job_id"] == id {
				return true
			}
		}
		return false
	}
	id := long()
	redistest.Eventually(t, 30*time.Second, func() bool { return startedOn(first, id) }, "the Python worker starts the job")
	_, err = c.Cancel(ctx, id, "not needed")
	require.NoError(t, err)
	redistest.Eventually(t, 10*time.Second, func() bool {
		for _, l := range first.Lines() {
			if l["msg"] == "job cancelled" && l["job_id"] == id {
				return true
			}
		}
		return false
	}, "the Python handler stops")

	// kill -9 mid-job: a second worker completes it, the crash not counted.
	id = long()
	redistest.Eventually(t, 30*time.Second, func() bool { return startedOn(first, id) }, "the first worker starts the job")
	second := startPython()
	first.Kill()
	killed := time.Now()
	redistest.Eventually(t, 10*time.Second, func() bool { return startedOn(second, id) }, "the second worker takes the job over")
	t.Logf("kill -9 → restarted on the second Python worker in %.2fs", time.Since(killed).Seconds())
	done, err = c.Wait(ctx, id)
	require.NoError(t, err)
	require.Equal(t, jobforgev1.Job_SUCCEEDED, done.GetState(), "%v", done)
	require.Equal(t, int32(1), done.GetAttempts(), "the crash did not use up an attempt")
	second.Stop(t, 30*time.Second)
}
