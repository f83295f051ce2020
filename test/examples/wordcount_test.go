// Package examples_test runs the examples/ modules the way a team would
// run its own job types: their own worker binary next to the stock API
// binary, against a real redis-server, with no jobforge code changed.
package examples_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/auth"
	"github.com/jobforge/jobforge/internal/proctest"
	"github.com/jobforge/jobforge/internal/redistest"
)

func TestMain(m *testing.M) { proctest.Main(m) }

const token = "examples-test-key-0123456789abcdef"

// goCmd runs the go command in the example module.
func goCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go %s in %s:\n%s", strings.Join(args, " "), dir, out)
	return string(out)
}

// TestWordcountModule: the wordcount job type lives in its own module
// (examples/wordcount, its own go.mod). Its worker, started next to the
// stock cmd/api, publishes the type; the API, which has no wordcount code,
// then validates and accepts wordcount jobs over REST, and a Go service
// submits one and waits for its typed result through the client package.
func TestWordcountModule(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(proctest.ModuleRoot(t), "examples", "wordcount")
	goCmd(t, dir, "vet", "./...")
	goCmd(t, dir, "test", "-count=1", "./...")
	bin := t.TempDir()
	goCmd(t, dir, "build", "-o", bin+string(os.PathSeparator), "./cmd/...")

	redisURL := redistest.NewDB(t)
	keys, err := json.Marshal(map[string]any{"keys": []auth.Key{auth.HashedKey(token, "example", "acme", auth.AllScopes)}})
	require.NoError(t, err)
	keyFile := filepath.Join(t.TempDir(), "keys.json")
	require.NoError(t, os.WriteFile(keyFile, keys, 0o600))
	env := []string{"REDIS_URL=" + redisURL, "JOBFORGE_LOG_FORMAT=json"}
	api := proctest.Start(t, proctest.Build(t, true, "./cmd/api")["api"], env, "api started",
		"-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-api-keys-file", keyFile)
	baseURL := "http://" + api.Field("api started", "http_addr")

	code, body := call(t, http.MethodPost, baseURL+"/v1/jobs", `{"type":"wordcount","payload":{"text":"a b"}}`)
	require.Equal(t, http.StatusBadRequest, code, "before any worker published it, the type is unknown: %s", body)
	require.Contains(t, body, `unknown job type \"wordcount\"`)

	worker := proctest.Start(t, filepath.Join(bin, "wordcount-worker"), env, "worker started",
		"-admin-addr", "127.0.0.1:0", "-poll-interval", "5ms")

	code, body = call(t, http.MethodGet, baseURL+"/v1/jobTypes", "")
	require.Equal(t, http.StatusOK, code, body)
	var types struct {
		JobTypes []struct {
			Name          string          `json:"name"`
			Workers       []string        `json:"workers"`
			PayloadSchema json.RawMessage `json:"payloadSchema"`
		} `json:"jobTypes"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &types))
	require.Len(t, types.JobTypes, 1, "the API knows exactly the types its workers publish: %s", body)
	require.Equal(t, "wordcount", types.JobTypes[0].Name)
	require.Contains(t, string(types.JobTypes[0].PayloadSchema), `"maxLength":100000`)
	redistest.Eventually(t, 10*time.Second, func() bool {
		_, body := call(t, http.MethodGet, baseURL+"/v1/jobTypes", "")
		return strings.Contains(body, `"workers":["`)
	}, "the live worker is listed as serving the type")

	code, body = call(t, http.MethodPost, baseURL+"/v1/jobs", `{"type":"wordcount","payload":{"text":"","colour":"red"}}`)
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, `"field":"job.payload.colour","description":"unknown field"`)
	require.Contains(t, body, `"field":"job.payload.text","description":"must not be empty"`)
	code, body = call(t, http.MethodPost, baseURL+"/v1/jobs", `{"type":"primes","payload":{"limit":10}}`)
	require.Equal(t, http.StatusBadRequest, code, "the stock API has no built-in job code either: %s", body)
	require.Contains(t, body, "known types: wordcount")

	code, body = call(t, http.MethodPost, baseURL+"/v1/jobs", `{"type":"wordcount","payload":{"text":"the quick brown fox"}}`)
	require.Equal(t, http.StatusOK, code, body)
	var job struct {
		Name   string          `json:"name"`
		State  string          `json:"state"`
		Result json.RawMessage `json:"result"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &job))
	redistest.Eventually(t, 30*time.Second, func() bool {
		_, body := call(t, http.MethodGet, baseURL+"/v1/"+job.Name, "")
		require.NoError(t, json.Unmarshal([]byte(body), &job))
		return job.State == "SUCCEEDED" || job.State == "FAILED"
	}, "the wordcount job finishes")
	require.Equal(t, "SUCCEEDED", job.State)
	require.JSONEq(t, `{"words":4,"longest":"quick"}`, string(job.Result))

	submit := exec.Command(filepath.Join(bin, "wordcount-submit"), "-addr", api.Field("api started", "grpc_addr"),
		"-token", token, "hello", "wonderful", "world")
	out, err := submit.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Regexp(t, `^jobs/\S+: 3 words, longest "wonderful"\n$`, string(out))

	worker.Stop(t, 30*time.Second)
	api.Stop(t, 30*time.Second)
}

func call(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(bytes.TrimSpace(b))
}
