package system_test

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/proctest"
	"github.com/jobforge/jobforge/internal/redistest"
)

// Scale-out figures: I/O-bound jobs (a 30 ms wait each) drained by one and
// then four worker processes of 10 slots each against one Redis.
const (
	scaleJobs        = 1200
	scaleJobMillis   = 30
	scaleConcurrency = 10
)

// TestScaleOut drains the same backlog of I/O-bound jobs with 1 and with
// 4 worker processes against one Redis and the stock API: every job runs
// exactly once (counted from the workers' own logs), every worker takes a
// share, and the run prints the throughput of each and their ratio (the
// README quotes them). The binaries are built without the race detector so
// that the figures are the programs', not the detector's.
func TestScaleOut(t *testing.T) {
	t.Parallel()
	b := proctest.Build(t, false, "./cmd/api", "./cmd/worker")
	rates := map[int]float64{}
	for _, workers := range []int{1, 4} {
		rates[workers] = drainWith(t, b["api"], b["worker"], workers)
	}
	fmt.Fprintf(os.Stdout, "scale: %d jobs of %d ms, %d slots per worker: 1 worker %.0f jobs/s, 4 workers %.0f jobs/s (%.1f×)\n",
		scaleJobs, scaleJobMillis, scaleConcurrency, rates[1], rates[4], rates[4]/rates[1])
}

// drainWith fills a paused queue on a fresh Redis, starts n workers,
// resumes the queue and measures how fast they drain it.
func drainWith(t *testing.T, apiBin, workerBin string, n int) float64 {
	t.Helper()
	srv := redistest.NewServer(t)
	env := []string{"REDIS_URL=" + srv.URL(0), "JOBFORGE_AUTH_DISABLED=true", "JOBFORGE_LOG_LEVEL=debug", "JOBFORGE_LOG_FORMAT=json",
		"JOBFORGE_RATE_LIMIT_WRITE=0", "JOBFORGE_TENANT_RATE_LIMIT_WRITE=0", "JOBFORGE_RATE_LIMIT_READ=0", "JOBFORGE_TENANT_RATE_LIMIT_READ=0"}
	quiet := proctest.Options{Quiet: true}
	api := proctest.StartWith(t, quiet, apiBin, env, "api started", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0")
	c := &cluster{api: api, baseURL: "http://" + api.Field("api started", "http_addr")}
	var workers []*proctest.Process
	for range n {
		workers = append(workers, proctest.StartWith(t, quiet, workerBin, env, "worker started",
			"-admin-addr", "127.0.0.1:0", "-pools", "io", "-queues", "default=1", "-concurrency", fmt.Sprint(scaleConcurrency)))
	}
	code, body := c.post(t, "/v1/queues/default:pause", "{}")
	require.Equal(t, http.StatusOK, code, "%v", body)

	job := fmt.Sprintf(`{"job":{"type":"simulate","queue":"default","payload":{"duration_millis":%d}}}`, scaleJobMillis)
	names := map[string]bool{}
	for len(names) < scaleJobs {
		batch := strings.Repeat(job+",", 99) + job
		code, body := c.post(t, "/v1/jobs:batchCreate", `{"requests":[`+batch+`]}`)
		require.Equal(t, http.StatusOK, code, "%v", body)
		results, _ := body["results"].([]any)
		require.Len(t, results, 100, "%v", body)
		for _, r := range results {
			j, _ := r.(map[string]any)["job"].(map[string]any)
			require.NotNil(t, j, "an item was not created: %v", r)
			names[j["name"].(string)] = true
		}
	}

	start := time.Now()
	code, body = c.post(t, "/v1/queues/default:resume", "{}")
	require.Equal(t, http.StatusOK, code, "%v", body)
	redistest.Eventually(t, time.Minute, func() bool {
		q := queueStats(t, c, "default")
		return int64Field(q["pending"]) == 0 && int64Field(q["active"]) == 0 && int64Field(q["processedToday"]) >= scaleJobs
	}, "the backlog was not drained")
	rate := float64(scaleJobs) / time.Since(start).Seconds()

	// Every job once, every worker a share.
	runs := map[string]int{}
	for i, w := range workers {
		mine := 0
		for _, l := range w.Lines() {
			if l["msg"] == "job attempt started" {
				runs["jobs/"+fmt.Sprint(l["job_id"])]++
				mine++
			}
		}
		require.Greater(t, mine, scaleJobs/(10*n), "worker %d of %d ran %d of %d jobs", i+1, n, mine, scaleJobs)
	}
	require.Len(t, runs, scaleJobs)
	for name, times := range runs {
		require.True(t, names[name], "ran a job that was not submitted: %s", name)
		require.Equal(t, 1, times, "job %s ran %d times", name, times)
	}
	for _, w := range workers {
		w.Stop(t, 10*time.Second)
	}
	api.Stop(t, 10*time.Second)
	return rate
}

// queueStats is one queue of GET /v1/queues.
func queueStats(t *testing.T, c *cluster, name string) map[string]any {
	t.Helper()
	code, body := c.get(t, "/v1/queues")
	require.Equal(t, http.StatusOK, code, "%v", body)
	for _, q := range body["queues"].([]any) {
		if q := q.(map[string]any); q["name"] == "queues/"+name {
			return q
		}
	}
	t.Fatalf("no queue %s in %v", name, body)
	return nil
}

// int64Field reads an int64 field of a REST reply (a JSON string; absent when 0).
func int64Field(v any) int {
	n, _ := strconv.Atoi(fmt.Sprint(v))
	return n
}
