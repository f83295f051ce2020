package system_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/redistest"
)

func TestLifecycleAcrossProcesses(t *testing.T) {
	t.Parallel()
	c := newCluster(t, redistest.NewDB(t), "-cpu-concurrency", "1")
	ctx := context.Background()

	t.Run("retry policy and timeouts", func(t *testing.T) {
		t.Parallel()
		code, job := c.post(t, "/v1/jobs", `{"type":"simulate","payload":{"duration_millis":30000},"timeout":"0.5s",
			"maxAttempts":2,"retryPolicy":{"initialBackoff":"0.2s"}}`)
		require.Equal(t, http.StatusOK, code, "%v", job)
		done := c.waitREST(t, job["name"].(string), 30*time.Second, stateIs("FAILED", "SUCCEEDED"))
		require.Equal(t, "FAILED", done["state"])
		require.Equal(t, float64(2), done["attempts"])
		errs := done["attemptErrors"].([]any)
		require.Len(t, errs, 2)
		for _, e := range errs {
			require.Equal(t, "attempt timed out after 500ms", e.(map[string]any)["message"])
		}
	})

	t.Run("scheduled job starts on time", func(t *testing.T) {
		t.Parallel()
		code, job := c.post(t, "/v1/jobs", `{"type":"simulate","scheduleDelay":"1.5s"}`)
		require.Equal(t, http.StatusOK, code, "%v", job)
		require.Equal(t, "SCHEDULED", job["state"])
		done := c.waitREST(t, job["name"].(string), 30*time.Second, stateIs("SUCCEEDED", "FAILED"))
		require.Equal(t, "SUCCEEDED", done["state"])
		due, err := time.Parse(time.RFC3339Nano, done["scheduleTime"].(string))
		require.NoError(t, err)
		started, err := time.Parse(time.RFC3339Nano, done["startTime"].(string))
		require.NoError(t, err)
		late := started.Sub(due)
		t.Logf("scheduled job started %s after its time", late)
		require.GreaterOrEqual(t, late, time.Duration(0), "never early")
		require.Less(t, late, time.Second, "within 1s of its time")
	})

	t.Run("cancelling a running CPU-bound job", func(t *testing.T) {
		t.Parallel()
		code, job := c.post(t, "/v1/jobs", `{"type":"primes","payload":{"limit":2000000000},"maxAttempts":3}`)
		require.Equal(t, http.StatusOK, code, "%v", job)
		name := job["name"].(string)
		c.waitREST(t, name, 30*time.Second, stateIs("RUNNING"))

		start := time.Now()
		code, cancelled := c.post(t, "/v1/"+name+":cancel", `{"reason":"system test"}`)
		require.Equal(t, http.StatusOK, code, "%v", cancelled)
		require.Equal(t, "CANCELLED", cancelled["state"])
		// The single CPU slot is free again once the handler has stopped.
		code, next := c.post(t, "/v1/jobs", `{"type":"primes","payload":{"limit":1000}}`)
		require.Equal(t, http.StatusOK, code)
		c.waitREST(t, next["name"].(string), 30*time.Second, stateIs("SUCCEEDED"))
		stopped := time.Since(start)
		t.Logf("running job cancelled and its slot reused after %s", stopped)
		require.Less(t, stopped, 2*time.Second, "cancelled CPU-bound job stops within 2s")

		code, got := c.get(t, "/v1/"+name)
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "CANCELLED", got["state"])
		require.Equal(t, float64(1), got["attempts"], "never runs again")
		require.Equal(t, "system test", got["cancellation"].(map[string]any)["reason"])
	})

	t.Run("watch over gRPC and REST, with resume", func(t *testing.T) {
		t.Parallel()
		code, job := c.post(t, "/v1/jobs", `{"type":"report","payload":{"title":"w","pages":5,"page_millis":200},"scheduleDelay":"0.5s"}`)
		require.Equal(t, http.StatusOK, code, "%v", job)
		name := job["name"].(string)

		grpcDone := make(chan []*jobforgev1.JobEvent, 1)
		go func() {
			var evs []*jobforgev1.JobEvent
			defer func() { grpcDone <- evs }()
			stream, err := c.grpc.WatchJob(ctx, &jobforgev1.WatchJobRequest{Name: name})
			if err != nil {
				return
			}
			for {
				ev, err := stream.Recv()
				if err != nil {
					return
				}
				evs = append(evs, ev)
			}
		}()

		readNDJSON := func(url string, stopAfterProgress int) []map[string]any {
			resp, err := http.Get(url)
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			var out []map[string]any
			progress := 0
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				var line map[string]any
				require.NoError(t, json.Unmarshal(sc.Bytes(), &line))
				ev := line["result"].(map[string]any)
				out = append(out, ev)
				if ev["kind"] == "PROGRESS" {
					progress++
					if progress == stopAfterProgress {
						return out
					}
				}
			}
			return out
		}
		url := c.baseURL + "/v1/" + name + ":watch"
		first := readNDJSON(url, 2)
		rest := readNDJSON(url+"?afterEventId="+first[len(first)-1]["id"].(string), -1)
		all := append(first, rest...)
		seen := map[string]bool{}
		var pcts []float64
		for _, ev := range all {
			require.False(t, seen[ev["id"].(string)] && ev["kind"] != "SNAPSHOT", "duplicate event %v", ev["id"])
			seen[ev["id"].(string)] = true
			if ev["kind"] == "PROGRESS" {
				pcts = append(pcts, ev["progress"].(map[string]any)["percent"].(float64))
			}
		}
		require.Equal(t, []float64{20, 40, 60, 80, 100}, pcts, "no gaps, no duplicates")
		last := all[len(all)-1]
		require.Equal(t, "SUCCEEDED", last["state"])
		require.Equal(t, float64(55), last["result"].(map[string]any)["checksum"])

		evs := <-grpcDone
		require.NotEmpty(t, evs)
		require.Equal(t, jobforgev1.JobEvent_SNAPSHOT, evs[0].GetKind())
		progress := 0
		for _, ev := range evs {
			if ev.GetKind() == jobforgev1.JobEvent_PROGRESS {
				progress++
			}
		}
		require.GreaterOrEqual(t, progress, 3)
		end := evs[len(evs)-1]
		require.Equal(t, jobforgev1.Job_SUCCEEDED, end.GetState())
		require.Equal(t, float64(55), end.GetResult().GetStructValue().GetFields()["checksum"].GetNumberValue())
	})
}
