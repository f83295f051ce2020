package system_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/proctest"
	"github.com/jobforge/jobforge/internal/redistest"
)

// TestAPISurfaceOnRedisCluster runs the real API and worker against a real
// 3-master Redis Cluster (with a password) and drives the whole API
// surface over REST and gRPC: create, batch, idempotency, get, list with
// pages, watch with resume, cancel running, retry, schedules, queues,
// workers and rate limits. Jobs go to several queues, so their keys are on
// more than one node.
func TestAPISurfaceOnRedisCluster(t *testing.T) {
	t.Parallel()
	rc := redistest.NewCluster(t, redistest.ClusterOptions{Password: "cluster-pw"})
	c := newCluster(t, rc.URL(), "-cpu-concurrency", "1")
	ctx := context.Background()

	t.Run("create, get, and jobs on several nodes", func(t *testing.T) {
		t.Parallel()
		var names []string
		for _, body := range []string{
			`{"type":"simulate","payload":{"result":"a"}}`,
			`{"type":"simulate","queue":"critical","payload":{"result":"b"}}`,
			`{"type":"simulate","queue":"low","payload":{"result":"c"}}`,
			`{"type":"primes","payload":{"limit":1000}}`,
		} {
			code, job := c.post(t, "/v1/jobs", body)
			require.Equal(t, http.StatusOK, code, "%v", job)
			names = append(names, job["name"].(string))
		}
		queues := map[string]bool{}
		for _, name := range names {
			done := c.waitREST(t, name, 30*time.Second, stateIs("SUCCEEDED", "FAILED"))
			require.Equal(t, "SUCCEEDED", done["state"], "%v", done)
			queues[done["queue"].(string)] = true
		}
		require.Len(t, queues, 4)
		nodes := 0
		for _, addr := range rc.Addrs() {
			n := redis.NewClient(&redis.Options{Addr: addr, Password: "cluster-pw"})
			keys, err := n.Keys(ctx, "jobforge:{*}:job:*").Result()
			_ = n.Close()
			require.NoError(t, err)
			if len(keys) > 0 {
				nodes++
			}
		}
		t.Logf("job records on %d of %d nodes", nodes, len(rc.Nodes))
		require.Greater(t, nodes, 1, "the queues' slots are on more than one node")
	})

	t.Run("batch", func(t *testing.T) {
		t.Parallel()
		code, resp := c.post(t, "/v1/jobs:batchCreate", `{"requests":[
			{"job":{"type":"simulate","payload":{"result":"x"}}},
			{"job":{"type":"simulate","queue":"low","payload":{"result":"y"}}},
			{"job":{"type":"primes","payload":{"limit":100}}}],"allOrNothing":true}`)
		require.Equal(t, http.StatusOK, code, "%v", resp)
		results := resp["results"].([]any)
		require.Len(t, results, 3)
		for _, r := range results {
			job := r.(map[string]any)["job"].(map[string]any)
			done := c.waitREST(t, job["name"].(string), 30*time.Second, stateIs("SUCCEEDED", "FAILED"))
			require.Equal(t, "SUCCEEDED", done["state"], "%v", done)
		}
	})

	t.Run("idempotency", func(t *testing.T) {
		t.Parallel()
		create := func(body string) (int, map[string]any) {
			req, err := http.NewRequest(http.MethodPost, c.baseURL+"/v1/jobs", strings.NewReader(body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", "cluster-key-1")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			return decode(t, resp)
		}
		code, first := create(`{"type":"simulate","payload":{"result":"once"}}`)
		require.Equal(t, http.StatusOK, code, "%v", first)
		code, again := create(`{"type":"simulate","payload":{"result":"once"}}`)
		require.Equal(t, http.StatusOK, code, "%v", again)
		require.Equal(t, first["name"], again["name"])
		code, conflict := create(`{"type":"simulate","payload":{"result":"other"}}`)
		require.Equal(t, http.StatusConflict, code, "%v", conflict)
	})

	t.Run("list with pages", func(t *testing.T) {
		t.Parallel()
		label := fmt.Sprintf("list-%d", time.Now().UnixNano())
		want := map[string]bool{}
		for i := range 7 {
			q := []string{"default", "critical", "low"}[i%3]
			code, job := c.post(t, "/v1/jobs", fmt.Sprintf(`{"type":"simulate","queue":%q,"labels":{"run":%q}}`, q, label))
			require.Equal(t, http.StatusOK, code, "%v", job)
			want[job["name"].(string)] = true
		}
		var got []string
		var lastCreate string
		token := ""
		for pages := 0; ; pages++ {
			require.Less(t, pages, 10, "too many pages")
			code, page := c.get(t, "/v1/jobs?pageSize=3&filter="+url.QueryEscape(`labels.run = "`+label+`"`)+"&pageToken="+url.QueryEscape(token))
			require.Equal(t, http.StatusOK, code, "%v", page)
			jobs, _ := page["jobs"].([]any)
			require.LessOrEqual(t, len(jobs), 3)
			for _, j := range jobs {
				job := j.(map[string]any)
				got = append(got, job["name"].(string))
				ct := job["createTime"].(string)
				if lastCreate != "" {
					require.LessOrEqual(t, ct, lastCreate, "newest first across queues")
				}
				lastCreate = ct
			}
			token, _ = page["nextPageToken"].(string)
			if token == "" {
				break
			}
		}
		require.Len(t, got, len(want), "every job once: %v", got)
		for _, name := range got {
			require.True(t, want[name], "unexpected job %s", name)
		}
	})

	t.Run("watch with resume", func(t *testing.T) {
		t.Parallel()
		code, job := c.post(t, "/v1/jobs", `{"type":"simulate","scheduleDelay":"1s","payload":{"duration_millis":500}}`)
		require.Equal(t, http.StatusOK, code, "%v", job)
		name := job["name"].(string)
		stream, err := c.grpc.WatchJob(ctx, &jobforgev1.WatchJobRequest{Name: name})
		require.NoError(t, err)
		first, err := stream.Recv()
		require.NoError(t, err)
		require.Equal(t, jobforgev1.JobEvent_SNAPSHOT, first.GetKind())
		second, err := stream.Recv()
		require.NoError(t, err)
		require.Equal(t, jobforgev1.Job_RUNNING, second.GetState(), "the snapshot was SCHEDULED; then it starts")
		// Resume after the second event: the rest arrives, ending with the
		// terminal state, without a snapshot.
		resumed, err := c.grpc.WatchJob(ctx, &jobforgev1.WatchJobRequest{Name: name, AfterEventId: second.GetId()})
		require.NoError(t, err)
		var last *jobforgev1.JobEvent
		for {
			ev, err := resumed.Recv()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			require.NotEqual(t, jobforgev1.JobEvent_SNAPSHOT, ev.GetKind())
			require.Greater(t, ev.GetId(), second.GetId())
			last = ev
		}
		require.NotNil(t, last)
		require.Equal(t, jobforgev1.Job_SUCCEEDED, last.GetState())
	})

	t.Run("cancel running, then retry", func(t *testing.T) {
		t.Parallel()
		code, job := c.post(t, "/v1/jobs", `{"type":"primes","payload":{"limit":2000000000},"maxAttempts":1}`)
		require.Equal(t, http.StatusOK, code, "%v", job)
		name := job["name"].(string)
		c.waitREST(t, name, 30*time.Second, stateIs("RUNNING"))
		code, cancelled := c.post(t, "/v1/"+name+":cancel", `{"reason":"cluster test"}`)
		require.Equal(t, http.StatusOK, code, "%v", cancelled)
		require.Equal(t, "CANCELLED", cancelled["state"])
		code, retried := c.post(t, "/v1/"+name+":retry", `{}`)
		require.Equal(t, http.StatusOK, code, "%v", retried)
		require.Equal(t, "PENDING", retried["state"])
		c.waitREST(t, name, 30*time.Second, stateIs("RUNNING"))
		code, cancelled = c.post(t, "/v1/"+name+":cancel", `{}`)
		require.Equal(t, http.StatusOK, code, "%v", cancelled)
	})

	t.Run("schedules", func(t *testing.T) {
		t.Parallel()
		code, sc := c.post(t, "/v1/schedules", `{"cron":"@every 1s","job":{"type":"simulate","labels":{"from":"cluster-schedule"}}}`)
		require.Equal(t, http.StatusOK, code, "%v", sc)
		name := sc["name"].(string)
		redistest.Eventually(t, 30*time.Second, func() bool {
			code, page := c.get(t, "/v1/jobs?filter="+url.QueryEscape(`labels.from = "cluster-schedule" AND state = SUCCEEDED`))
			require.Equal(t, http.StatusOK, code, "%v", page)
			jobs, _ := page["jobs"].([]any)
			return len(jobs) >= 2
		}, "two scheduled jobs ran")
		code, _ = c.do(t, http.MethodDelete, "/v1/"+name, "")
		require.Equal(t, http.StatusOK, code)
	})

	t.Run("queues and workers", func(t *testing.T) {
		t.Parallel()
		code, paused := c.post(t, "/v1/queues/low:pause", `{}`)
		require.Equal(t, http.StatusOK, code, "%v", paused)
		code, job := c.post(t, "/v1/jobs", `{"type":"simulate","queue":"low"}`)
		require.Equal(t, http.StatusOK, code, "%v", job)
		redistest.Eventually(t, 10*time.Second, func() bool {
			code, list := c.get(t, "/v1/queues")
			require.Equal(t, http.StatusOK, code, "%v", list)
			for _, q := range list["queues"].([]any) {
				q := q.(map[string]any)
				if q["name"] == "queues/low" {
					return q["paused"] == true
				}
			}
			return false
		}, "queue low listed as paused")
		code, got := c.get(t, "/v1/"+job["name"].(string))
		require.Equal(t, http.StatusOK, code, "%v", got)
		require.Equal(t, "PENDING", got["state"], "a paused queue's job waits")
		code, _ = c.post(t, "/v1/queues/low:resume", `{}`)
		require.Equal(t, http.StatusOK, code)
		c.waitREST(t, job["name"].(string), 30*time.Second, stateIs("SUCCEEDED"))

		code, workers := c.get(t, "/v1/workers")
		require.Equal(t, http.StatusOK, code, "%v", workers)
		require.NotEmpty(t, workers["workers"], "%v", workers)
		code, types := c.get(t, "/v1/jobTypes")
		require.Equal(t, http.StatusOK, code, "%v", types)
		require.NotEmpty(t, types["jobTypes"], "%v", types)
	})

	t.Run("rate limit", func(t *testing.T) {
		t.Parallel()
		apiBin, _ := binaries(t)
		limited := proctest.Start(t, apiBin, []string{"REDIS_URL=" + rc.URL(), "JOBFORGE_AUTH_DISABLED=true", "JOBFORGE_RATE_LIMIT_WRITE=2"},
			"api started", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0")
		base := "http://" + limited.Field("api started", "http_addr")
		var throttled *http.Response
		for range 20 {
			resp, err := http.Post(base+"/v1/jobs", "application/json", strings.NewReader(`{"type":"simulate"}`))
			require.NoError(t, err)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusTooManyRequests {
				throttled = resp
				break
			}
			require.Equal(t, http.StatusOK, resp.StatusCode)
		}
		require.NotNil(t, throttled, "20 creates at once pass a limit of 2/s")
		require.NotEmpty(t, throttled.Header.Get("Retry-After"))
	})
}
