package system_test

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/proctest"
	"github.com/jobforge/jobforge/internal/redistest"
)

// TestOperabilityOfRealBinaries checks the admin ports of the real API and
// worker processes: job metrics where each process counts them, cluster
// queue metrics on the API, pprof only off the public port, and worker log
// lines that carry the job id and the trace id of the request.
func TestOperabilityOfRealBinaries(t *testing.T) {
	t.Parallel()
	c := newCluster(t, redistest.NewDB(t))
	apiAdmin := "http://" + c.api.Field("api started", "admin_addr")
	workerAdmin := "http://" + c.worker.Field("worker started", "admin_addr")

	const traceID = "5b8efff798038103d269b633813fc60c"
	create := func(body string) string {
		req, err := http.NewRequest(http.MethodPost, c.baseURL+"/v1/jobs", strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Traceparent", "00-"+traceID+"-eee19b7ec3c1b174-01")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		code, job := decode(t, resp)
		require.Equal(t, http.StatusOK, code, "%v", job)
		return job["name"].(string)
	}
	ok1 := create(`{"type":"simulate","payload":{}}`)
	ok2 := create(`{"type":"simulate","payload":{}}`)
	bad := create(`{"type":"simulate","payload":{"outcome":"fail"},"maxAttempts":1}`)
	for name, want := range map[string]string{ok1: "SUCCEEDED", ok2: "SUCCEEDED", bad: "FAILED"} {
		c.waitREST(t, name, 20*time.Second, func(job map[string]any) bool { return job["state"] == want })
	}

	redistest.Eventually(t, 10*time.Second, func() bool {
		w, a := scrape(t, workerAdmin), scrape(t, apiAdmin)
		return w[`jobforge_jobs_succeeded_total{queue="default",type="simulate"}`] == 2 &&
			w[`jobforge_jobs_failed_total{queue="default",type="simulate"}`] == 1 &&
			a[`jobforge_jobs_created_total{queue="default",type="simulate"}`] == 3 &&
			a["jobforge_queue_stats_exporter"] == 1
	}, "job counters on the worker's and the API's admin ports")
	w := scrape(t, workerAdmin)
	require.Positive(t, w[`jobforge_worker_slots{pool="io"}`])
	_, hasQueueStats := w["jobforge_queue_stats_exporter"]
	require.False(t, hasQueueStats, "workers do not export cluster queue metrics")

	for _, tt := range []struct {
		url  string
		want int
	}{
		{c.baseURL + "/debug/pprof/", http.StatusNotFound},
		{c.baseURL + "/metrics", http.StatusNotFound},
		{apiAdmin + "/debug/pprof/", http.StatusOK},
		{workerAdmin + "/debug/pprof/", http.StatusOK},
		{apiAdmin + "/readyz", http.StatusOK},
		{workerAdmin + "/readyz", http.StatusOK},
	} {
		resp, err := http.Get(tt.url)
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, tt.want, resp.StatusCode, tt.url)
	}

	id := strings.TrimPrefix(ok1, "jobs/")
	line := find(c.worker, func(m map[string]any) bool { return m["msg"] == "job succeeded" && m["job_id"] == id })
	require.NotNil(t, line, "no 'job succeeded' log line for %s", id)
	require.Equal(t, traceID, line["trace_id"])
	require.Equal(t, "simulate", line["type"])
	require.Equal(t, "default", line["queue"])
	require.Equal(t, float64(1), line["attempt"])
}

// find returns the first JSON log line that matches, or nil.
func find(p *proctest.Process, match func(map[string]any) bool) map[string]any {
	for _, m := range p.Lines() {
		if match(m) {
			return m
		}
	}
	return nil
}

// scrape reads a /metrics page into series → value.
func scrape(t *testing.T, adminURL string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(adminURL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, line)
		out[line[:i]] = v
	}
	require.NoError(t, sc.Err())
	return out
}
