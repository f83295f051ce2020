// Package system_test builds the real binaries, starts them as processes
// against a real redis-server and drives them over REST and gRPC.
package system_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protojson"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/proctest"
	"github.com/jobforge/jobforge/internal/redistest"
)

func TestMain(m *testing.M) { proctest.Main(m) }

type cluster struct {
	api, worker *proctest.Process
	baseURL     string
	bearer      string // Authorization: Bearer value, when set
	grpc        jobforgev1.JobServiceClient
	conn        *grpc.ClientConn
}

func newCluster(t *testing.T, redisURL string, workerArgs ...string) *cluster {
	t.Helper()
	apiBin, workerBin := binaries(t)
	// Authentication has its own tests; here every caller has full access.
	env := []string{"REDIS_URL=" + redisURL, "JOBFORGE_LOG_LEVEL=debug", "JOBFORGE_AUTH_DISABLED=true"}
	c := &cluster{}
	c.api = proctest.Start(t, apiBin, env, "api started", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0")
	c.worker = proctest.Start(t, workerBin, env, "worker started",
		append([]string{"-admin-addr", "127.0.0.1:0", "-poll-interval", "5ms", "-delayed-check-interval", "100ms"}, workerArgs...)...)
	c.baseURL = "http://" + c.api.Field("api started", "http_addr")
	conn, err := grpc.NewClient(c.api.Field("api started", "grpc_addr"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	c.conn = conn
	c.grpc = jobforgev1.NewJobServiceClient(conn)
	return c
}

func (c *cluster) post(t *testing.T, path, body string) (int, map[string]any) {
	t.Helper()
	return c.do(t, http.MethodPost, path, body)
}

func (c *cluster) get(t *testing.T, path string) (int, map[string]any) {
	t.Helper()
	return c.do(t, http.MethodGet, path, "")
}

func (c *cluster) do(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, c.baseURL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	return decode(t, resp)
}

func decode(t *testing.T, resp *http.Response) (int, map[string]any) {
	t.Helper()
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m), "body: %s", raw)
	return resp.StatusCode, m
}

// waitREST polls GET /v1/{name} until cond holds, returning the last job.
func (c *cluster) waitREST(t *testing.T, name string, timeout time.Duration, cond func(job map[string]any) bool) map[string]any {
	t.Helper()
	var last map[string]any
	redistest.Eventually(t, timeout, func() bool {
		code, job := c.get(t, "/v1/"+name)
		require.Equal(t, http.StatusOK, code, "%v", job)
		last = job
		return cond(job)
	}, "job %s", name)
	return last
}

func stateIs(states ...string) func(map[string]any) bool {
	return func(job map[string]any) bool {
		for _, s := range states {
			if job["state"] == s {
				return true
			}
		}
		return false
	}
}

// expectedResult computes the result a built-in type must return for its
// example payload, independently of the handler.
func expectedResult(t *testing.T, typ string, payload map[string]any) string {
	t.Helper()
	switch typ {
	case "primes":
		limit := int(payload["limit"].(float64))
		sieve := make([]bool, limit)
		count, largest := 0, 0
		for i := 2; i < limit; i++ {
			if !sieve[i] {
				count, largest = count+1, i
				for j := i * i; j < limit; j += i {
					sieve[j] = true
				}
			}
		}
		return fmt.Sprintf(`{"limit":%d,"count":%d,"largest":%d}`, limit, count, largest)
	case "report":
		pages := int(payload["pages"].(float64))
		sum := 0
		for i := 1; i <= pages; i++ {
			sum += i * i
		}
		return fmt.Sprintf(`{"title":%q,"pages":%d,"checksum":%d}`, payload["title"], pages, sum)
	case "simulate":
		echo, err := json.Marshal(payload["result"])
		require.NoError(t, err)
		return fmt.Sprintf(`{"attempt":1,"echo":%s}`, echo)
	}
	t.Fatalf("no expected result for type %q", typ)
	return ""
}

func TestBuiltinTypesEndToEnd(t *testing.T) {
	t.Parallel()
	c := newCluster(t, redistest.NewDB(t))
	ctx := context.Background()

	code, resp := c.get(t, "/v1/jobTypes")
	require.Equal(t, http.StatusOK, code)
	types := resp["jobTypes"].([]any)
	require.Len(t, types, 3)

	for _, raw := range types {
		jt := raw.(map[string]any)
		name, example := jt["name"].(string), jt["examplePayload"].(map[string]any)
		want := expectedResult(t, name, example)
		exampleJSON, err := json.Marshal(example)
		require.NoError(t, err)

		t.Run(name+"/rest", func(t *testing.T) {
			t.Parallel()
			code, job := c.post(t, "/v1/jobs", fmt.Sprintf(`{"type":%q,"payload":%s}`, name, exampleJSON))
			require.Equal(t, http.StatusOK, code, "%v", job)
			require.Equal(t, "PENDING", job["state"])
			done := c.waitREST(t, job["name"].(string), time.Minute, stateIs("SUCCEEDED", "FAILED"))
			require.Equal(t, "SUCCEEDED", done["state"], "%v", done)
			got, err := json.Marshal(done["result"])
			require.NoError(t, err)
			require.JSONEq(t, want, string(got))
			require.Equal(t, float64(1), done["attempts"])
			require.NotEmpty(t, done["startTime"])
			require.NotEmpty(t, done["endTime"])
		})
		t.Run(name+"/grpc", func(t *testing.T) {
			t.Parallel()
			job := &jobforgev1.Job{}
			require.NoError(t, protojson.Unmarshal([]byte(fmt.Sprintf(`{"type":%q,"payload":%s}`, name, exampleJSON)), job))
			created, err := c.grpc.CreateJob(ctx, &jobforgev1.CreateJobRequest{Job: job})
			require.NoError(t, err)
			var got *jobforgev1.Job
			redistest.Eventually(t, time.Minute, func() bool {
				got, err = c.grpc.GetJob(ctx, &jobforgev1.GetJobRequest{Name: created.GetName()})
				require.NoError(t, err)
				return got.GetState() == jobforgev1.Job_SUCCEEDED || got.GetState() == jobforgev1.Job_FAILED
			}, "job %s to finish", created.GetName())
			require.Equal(t, jobforgev1.Job_SUCCEEDED, got.GetState(), "%v", got)
			res, err := protojson.Marshal(got.GetResult())
			require.NoError(t, err)
			require.JSONEq(t, want, string(res))
		})
	}
}

func TestFailuresAndProgress(t *testing.T) {
	t.Parallel()
	c := newCluster(t, redistest.NewDB(t))

	t.Run("failing job ends FAILED with its error", func(t *testing.T) {
		t.Parallel()
		code, job := c.post(t, "/v1/jobs", `{"type":"simulate","payload":{"outcome":"fail","message":"disk full"},"maxAttempts":1}`)
		require.Equal(t, http.StatusOK, code, "%v", job)
		done := c.waitREST(t, job["name"].(string), 30*time.Second, stateIs("FAILED", "SUCCEEDED"))
		require.Equal(t, "FAILED", done["state"])
		require.Equal(t, "disk full", done["error"].(map[string]any)["message"])
		require.Nil(t, done["result"])
	})

	t.Run("retries then succeeds", func(t *testing.T) {
		t.Parallel()
		code, job := c.post(t, "/v1/jobs", `{"type":"simulate","payload":{"fail_times":1,"message":"flaky"},"maxAttempts":3}`)
		require.Equal(t, http.StatusOK, code, "%v", job)
		done := c.waitREST(t, job["name"].(string), 30*time.Second, stateIs("FAILED", "SUCCEEDED"))
		require.Equal(t, "SUCCEEDED", done["state"], "%v", done)
		require.Equal(t, float64(2), done["attempts"])
		require.Contains(t, done["error"].(map[string]any)["message"], "flaky", "the failed attempt stays visible")
	})

	t.Run("long-running job shows progress", func(t *testing.T) {
		t.Parallel()
		code, job := c.post(t, "/v1/jobs", `{"type":"report","payload":{"title":"t","pages":20,"page_millis":100}}`)
		require.Equal(t, http.StatusOK, code, "%v", job)
		running := c.waitREST(t, job["name"].(string), 30*time.Second, func(j map[string]any) bool {
			p, _ := j["progress"].(map[string]any)
			pct, _ := p["percent"].(float64)
			return j["state"] == "RUNNING" && pct > 0 && pct < 100
		})
		require.Regexp(t, `^page \d+ of 20$`, running["progress"].(map[string]any)["message"])
		done := c.waitREST(t, job["name"].(string), 30*time.Second, stateIs("SUCCEEDED", "FAILED"))
		require.Equal(t, "SUCCEEDED", done["state"])
		require.Equal(t, float64(100), done["progress"].(map[string]any)["percent"])
	})

	t.Run("bad input is 400 and the server keeps serving", func(t *testing.T) {
		t.Parallel()
		for _, body := range []string{`{"type":"nope"}`, `{"type":"primes","payload":{"limit":-1}}`, `{not json`} {
			code, resp := c.post(t, "/v1/jobs", body)
			require.Equal(t, http.StatusBadRequest, code, "%s → %v", body, resp)
			require.NotEmpty(t, resp["message"])
		}
		code, _ := c.get(t, "/v1/jobTypes")
		require.Equal(t, http.StatusOK, code)
	})
}

func TestHealthReflectionAndShutdown(t *testing.T) {
	t.Parallel()
	c := newCluster(t, redistest.NewDB(t))
	ctx := context.Background()

	hc, err := healthpb.NewHealthClient(c.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "jobforge.v1.JobService"})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, hc.GetStatus())

	for _, url := range []string{c.baseURL + "/readyz", "http://" + c.worker.Field("worker started", "admin_addr") + "/readyz"} {
		resp, err := http.Get(url)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, url)
	}

	// A running job finishes during the worker's graceful shutdown.
	code, job := c.post(t, "/v1/jobs", `{"type":"report","payload":{"pages":5,"page_millis":200}}`)
	require.Equal(t, http.StatusOK, code)
	c.waitREST(t, job["name"].(string), 30*time.Second, stateIs("RUNNING"))
	c.worker.Stop(t, 30*time.Second)
	code, done := c.get(t, "/v1/"+job["name"].(string))
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "SUCCEEDED", done["state"], "running job drained on SIGTERM: %v", done)

	c.api.Stop(t, 30*time.Second)
}

func TestDevModeEmbeddedStore(t *testing.T) {
	t.Parallel()
	devBin := devBinary(t)
	const devKey = "system-test-dev-key-0123456789"
	p := proctest.Start(t, devBin, []string{"REDIS_URL=", "JOBFORGE_LOG_FORMAT=json", "JOBFORGE_DEV_KEY=" + devKey}, "api started",
		"-dev", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0")
	require.Equal(t, "true", p.Field("api started", "embedded_store"))
	redistest.Eventually(t, 5*time.Second, func() bool { return strings.Contains(p.Output(), "NOT DURABLE") },
		"banner says the store is not durable")
	c := &cluster{baseURL: "http://" + p.Field("api started", "http_addr"), bearer: devKey}
	code, _ := c.get(t, "/v1/jobTypes")
	c.bearer = ""
	require.Equal(t, http.StatusOK, code)
	code, _ = c.get(t, "/v1/jobTypes")
	require.Equal(t, http.StatusUnauthorized, code, "dev mode still requires the dev key")
	c.bearer = devKey
	code, job := c.post(t, "/v1/jobs", `{"type":"primes","payload":{"limit":1000000}}`)
	require.Equal(t, http.StatusOK, code, "%v", job)
	done := c.waitREST(t, job["name"].(string), 30*time.Second, stateIs("SUCCEEDED", "FAILED"))
	require.Equal(t, "SUCCEEDED", done["state"])
	got, _ := json.Marshal(done["result"])
	require.JSONEq(t, `{"limit":1000000,"count":78498,"largest":999983}`, string(got))
	p.Stop(t, 30*time.Second)
}
