package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/api"
	"github.com/jobforge/jobforge/internal/queue"
	"github.com/jobforge/jobforge/internal/redistest"
)

// setupWithWorker runs the API and a worker (real retry policies, fast
// polling) on one fresh database.
func setupWithWorker(t *testing.T) *bundle {
	t.Helper()
	b, s := setupStack(t, redistest.NewDB(t))
	s.startWorker(t, func(o *queue.WorkerOptions) {
		o.Pools[0].Concurrency = 8
		o.CancelCheckInterval = 200 * time.Millisecond
	})
	return b
}

func (b *bundle) create(t *testing.T, body string) map[string]any {
	t.Helper()
	code, job, _ := b.do(t, "POST", "/v1/jobs", body)
	require.Equal(t, http.StatusOK, code, "%v", job)
	return job
}

func (b *bundle) wait(t *testing.T, name string, cond func(map[string]any) bool, what string) map[string]any {
	t.Helper()
	var last map[string]any
	redistest.Eventually(t, 30*time.Second, func() bool {
		code, job, _ := b.do(t, "GET", "/v1/"+name, "")
		require.Equal(t, http.StatusOK, code)
		last = job
		return cond(job)
	}, "%s: %s", name, what)
	return last
}

func inState(states ...string) func(map[string]any) bool {
	return func(j map[string]any) bool {
		for _, s := range states {
			if j["state"] == s {
				return true
			}
		}
		return false
	}
}

func TestScheduling(t *testing.T) {
	t.Parallel()
	b := setupWithWorker(t)
	job := b.create(t, `{"type":"simulate","scheduleDelay":"1s"}`)
	require.Equal(t, "SCHEDULED", job["state"])
	at, err := time.Parse(time.RFC3339Nano, job["scheduleTime"].(string))
	require.NoError(t, err)
	done := b.wait(t, job["name"].(string), inState("SUCCEEDED"), "scheduled job runs")
	started, err := time.Parse(time.RFC3339Nano, done["startTime"].(string))
	require.NoError(t, err)
	require.False(t, started.Before(at), "a scheduled job never starts early")

	code, body, _ := b.do(t, "POST", "/v1/jobs", `{"type":"simulate","scheduleDelay":"1s","scheduleTime":"2030-01-01T00:00:00Z"}`)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body["message"], "not both")
}

func TestQueueChoiceAndRetryPolicy(t *testing.T) {
	t.Parallel()
	b := setupWithWorker(t)

	t.Run("job runs on the queue it picked", func(t *testing.T) {
		t.Parallel()
		job := b.create(t, `{"type":"simulate","queue":"critical"}`)
		done := b.wait(t, job["name"].(string), inState("SUCCEEDED"), "critical job runs")
		require.Equal(t, "critical", done["queue"])
	})
	t.Run("retries with the job's own backoff and keeps every error", func(t *testing.T) {
		t.Parallel()
		job := b.create(t, `{"type":"simulate","payload":{"fail_times":2,"message":"flaky"},"maxAttempts":4,
			"retryPolicy":{"initialBackoff":"0.3s","maxBackoff":"1s","multiplier":1,"jitter":0.01}}`)
		done := b.wait(t, job["name"].(string), inState("SUCCEEDED", "FAILED"), "flaky job finishes")
		require.Equal(t, "SUCCEEDED", done["state"])
		require.Equal(t, float64(3), done["attempts"])
		errs := done["attemptErrors"].([]any)
		require.Len(t, errs, 2)
		t1, _ := time.Parse(time.RFC3339Nano, errs[0].(map[string]any)["time"].(string))
		t2, _ := time.Parse(time.RFC3339Nano, errs[1].(map[string]any)["time"].(string))
		require.GreaterOrEqual(t, t2.Sub(t1), 290*time.Millisecond, "backoff from the job's policy")
		require.Equal(t, "0.300s", done["retryPolicy"].(map[string]any)["initialBackoff"])
	})
	t.Run("permanent error is not retried", func(t *testing.T) {
		t.Parallel()
		job := b.create(t, `{"type":"simulate","payload":{"outcome":"fail","permanent":true,"message":"bad"},"maxAttempts":5}`)
		done := b.wait(t, job["name"].(string), inState("FAILED"), "fails for good")
		require.Equal(t, float64(1), done["attempts"])
		require.Equal(t, true, done["error"].(map[string]any)["permanent"])
	})
	t.Run("timeout ends each attempt", func(t *testing.T) {
		t.Parallel()
		job := b.create(t, `{"type":"simulate","payload":{"duration_millis":60000},"timeout":"0.3s","maxAttempts":2,
			"retryPolicy":{"initialBackoff":"0.05s"}}`)
		done := b.wait(t, job["name"].(string), inState("FAILED"), "times out twice")
		require.Equal(t, float64(2), done["attempts"])
		require.Equal(t, "attempt timed out after 300ms", done["error"].(map[string]any)["message"])
		require.Len(t, done["attemptErrors"], 2)
	})
	t.Run("bad retry policy", func(t *testing.T) {
		t.Parallel()
		code, body, _ := b.do(t, "POST", "/v1/jobs", `{"type":"simulate","retryPolicy":{"multiplier":0.5}}`)
		require.Equal(t, http.StatusBadRequest, code)
		require.Contains(t, body["message"], "job.retry_policy.multiplier")
		code, body, _ = b.do(t, "POST", "/v1/jobs", `{"type":"simulate","timeout":"0.001s"}`)
		require.Equal(t, http.StatusBadRequest, code)
		require.Contains(t, body["message"], "at least 10ms")
	})
}

func TestCancelAndRetry(t *testing.T) {
	t.Parallel()
	b := setupWithWorker(t)
	ctx := context.Background()

	t.Run("scheduled job is cancelled at once, with who and why", func(t *testing.T) {
		t.Parallel()
		job := b.create(t, `{"type":"simulate","scheduleDelay":"3600s"}`)
		code, got, _ := b.do(t, "POST", "/v1/"+job["name"].(string)+":cancel", `{"reason":"not needed"}`)
		require.Equal(t, http.StatusOK, code, "%v", got)
		require.Equal(t, "CANCELLED", got["state"])
		c := got["cancellation"].(map[string]any)
		require.Equal(t, "not needed", c["reason"])
		require.Equal(t, "anonymous", c["requestedBy"])
		require.NotEmpty(t, c["time"])
		require.NotEmpty(t, got["expireTime"])
	})
	t.Run("running job over gRPC is cancelled and never runs again", func(t *testing.T) {
		t.Parallel()
		job := b.create(t, `{"type":"primes","payload":{"limit":2000000000},"maxAttempts":3}`)
		name := job["name"].(string)
		b.wait(t, name, inState("RUNNING"), "starts")
		cancelled, err := b.client.CancelJob(ctx, &jobforgev1.CancelJobRequest{Name: name, Reason: "too slow"})
		require.NoError(t, err)
		require.Equal(t, jobforgev1.Job_CANCELLED, cancelled.GetState())
		// The handler stops; the job is not retried: attempts stays 1 while
		// a fresh job on the same single-slot cpu queue runs to completion.
		after := b.create(t, `{"type":"primes","payload":{"limit":1000}}`)
		b.wait(t, after["name"].(string), inState("SUCCEEDED"), "cpu slot freed by the cancelled handler")
		got, err := b.client.GetJob(ctx, &jobforgev1.GetJobRequest{Name: name})
		require.NoError(t, err)
		require.Equal(t, jobforgev1.Job_CANCELLED, got.GetState())
		require.Equal(t, int32(1), got.GetAttempts())
	})
	t.Run("finished job cannot be cancelled", func(t *testing.T) {
		t.Parallel()
		job := b.create(t, `{"type":"simulate"}`)
		b.wait(t, job["name"].(string), inState("SUCCEEDED"), "finishes")
		code, body, _ := b.do(t, "POST", "/v1/"+job["name"].(string)+":cancel", `{}`)
		require.Equal(t, http.StatusBadRequest, code, "FAILED_PRECONDITION maps to 400")
		require.Equal(t, "cannot cancel job: it is SUCCEEDED", body["message"])
		_, err := b.client.CancelJob(ctx, &jobforgev1.CancelJobRequest{Name: job["name"].(string)})
		require.Equal(t, codes.FailedPrecondition, status.Code(err))
	})
	t.Run("failed job is retried with history kept", func(t *testing.T) {
		t.Parallel()
		job := b.create(t, `{"type":"simulate","payload":{"fail_times":1,"message":"first try fails"},"maxAttempts":1}`)
		name := job["name"].(string)
		b.wait(t, name, inState("FAILED"), "fails")
		code, got, _ := b.do(t, "POST", "/v1/"+name+":retry", `{}`)
		require.Equal(t, http.StatusOK, code, "%v", got)
		require.Equal(t, "PENDING", got["state"])
		done := b.wait(t, name, inState("SUCCEEDED", "FAILED"), "retried job finishes")
		require.Equal(t, "SUCCEEDED", done["state"])
		require.Equal(t, float64(2), done["attempts"])
		require.Len(t, done["attemptErrors"], 1)
		require.Equal(t, name, done["name"])

		_, err := b.client.RetryJob(ctx, &jobforgev1.RetryJobRequest{Name: name})
		require.Equal(t, codes.FailedPrecondition, status.Code(err), "a succeeded job is not retried")
	})
	t.Run("cancelled job can be retried", func(t *testing.T) {
		t.Parallel()
		job := b.create(t, `{"type":"simulate","scheduleDelay":"3600s"}`)
		name := job["name"].(string)
		_, err := b.client.CancelJob(ctx, &jobforgev1.CancelJobRequest{Name: name})
		require.NoError(t, err)
		retried, err := b.client.RetryJob(ctx, &jobforgev1.RetryJobRequest{Name: name})
		require.NoError(t, err)
		require.Equal(t, jobforgev1.Job_PENDING, retried.GetState())
		b.wait(t, name, inState("SUCCEEDED"), "runs now")
	})
	t.Run("unknown job", func(t *testing.T) {
		t.Parallel()
		code, _, _ := b.do(t, "POST", "/v1/jobs/does-not-exist:cancel", `{}`)
		require.Equal(t, http.StatusNotFound, code)
		code, _, _ = b.do(t, "POST", "/v1/jobs/does-not-exist:retry", `{}`)
		require.Equal(t, http.StatusNotFound, code)
	})
}

func TestIdempotency(t *testing.T) {
	t.Parallel()
	b := setup(t, redistest.NewDB(t))
	ctx := context.Background()

	first := b.create(t, `{"type":"simulate","idempotencyKey":"order-42","payload":{"outcome":"succeed"}}`)
	again := b.create(t, `{"type":"simulate","idempotencyKey":"order-42","payload":{"outcome":"succeed"}}`)
	require.Equal(t, first["name"], again["name"])
	require.Equal(t, "order-42", again["idempotencyKey"])
	// The payload answered: the request's for the new job, the stored one's
	// for the job that existed.
	require.Equal(t, map[string]any{"outcome": "succeed"}, first["payload"])
	require.Equal(t, map[string]any{"outcome": "succeed"}, again["payload"])

	code, body, _ := b.do(t, "POST", "/v1/jobs", `{"type":"simulate","idempotencyKey":"order-42","payload":{"outcome":"fail"}}`)
	require.Equal(t, http.StatusConflict, code)
	require.Contains(t, body["message"], "already used with a different request")

	// The Idempotency-Key header, over REST and as gRPC metadata.
	req, err := http.NewRequest("POST", b.baseURL+"/v1/jobs", strings.NewReader(`{"type":"simulate"}`))
	require.NoError(t, err)
	req.Header.Set("Idempotency-Key", "hdr-1")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var viaHeader map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&viaHeader))
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%v", viaHeader)
	gctx := metadata.AppendToOutgoingContext(ctx, "idempotency-key", "hdr-1")
	viaGRPC, err := b.client.CreateJob(gctx, &jobforgev1.CreateJobRequest{Job: &jobforgev1.Job{Type: "simulate"}})
	require.NoError(t, err)
	require.Equal(t, viaHeader["name"], viaGRPC.GetName())

	code, _, _ = b.do(t, "POST", "/v1/jobs", `{"type":"simulate","idempotencyKey":"has spaces"}`)
	require.Equal(t, http.StatusBadRequest, code)

	// 50 concurrent identical requests create exactly one job.
	var wg sync.WaitGroup
	names := make([]string, 50)
	for i := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j, err := b.client.CreateJob(ctx, &jobforgev1.CreateJobRequest{Job: &jobforgev1.Job{Type: "simulate", IdempotencyKey: "burst"}})
			if err == nil {
				names[i] = j.GetName()
			}
		}()
	}
	wg.Wait()
	for _, n := range names {
		require.Equal(t, names[0], n)
	}
	list, err := b.client.ListJobs(ctx, &jobforgev1.ListJobsRequest{PageSize: 1000})
	require.NoError(t, err)
	require.Len(t, list.GetJobs(), 3, "order-42, hdr-1 and burst: one job each")
}

func TestBatchCreate(t *testing.T) {
	t.Parallel()
	b := setup(t, redistest.NewDB(t))
	ctx := context.Background()

	code, resp, _ := b.do(t, "POST", "/v1/jobs:batchCreate", `{"requests":[
		{"job":{"type":"simulate"}},
		{"job":{"type":"nope"}},
		{"job":{"type":"primes","payload":{"limit":10}}}]}`)
	require.Equal(t, http.StatusOK, code, "%v", resp)
	results := resp["results"].([]any)
	require.Len(t, results, 3)
	require.Contains(t, results[0].(map[string]any)["job"], "name")
	require.Contains(t, results[1].(map[string]any)["error"].(map[string]any)["message"], "requests[1].job.type")
	require.Equal(t, "PENDING", results[2].(map[string]any)["job"].(map[string]any)["state"])

	code, resp, _ = b.do(t, "POST", "/v1/jobs:batchCreate", `{"allOrNothing":true,"requests":[
		{"job":{"type":"simulate","labels":{"batch":"atomic"}}},{"job":{"type":"nope"}}]}`)
	require.Equal(t, http.StatusOK, code)
	results = resp["results"].([]any)
	require.Equal(t, float64(codes.Aborted), results[0].(map[string]any)["error"].(map[string]any)["code"])
	require.Equal(t, float64(codes.InvalidArgument), results[1].(map[string]any)["error"].(map[string]any)["code"])
	list, err := b.client.ListJobs(ctx, &jobforgev1.ListJobsRequest{Filter: `labels.batch = "atomic"`})
	require.NoError(t, err)
	require.Empty(t, list.GetJobs(), "all_or_nothing created nothing")

	big := &jobforgev1.BatchCreateJobsRequest{}
	for i := range 1000 {
		big.Requests = append(big.Requests, &jobforgev1.CreateJobRequest{Job: &jobforgev1.Job{
			Type: "simulate", Labels: map[string]string{"batch": "big", "i": fmt.Sprint(i)},
		}})
	}
	out, err := b.client.BatchCreateJobs(ctx, big)
	require.NoError(t, err)
	seen := map[string]bool{}
	for i, r := range out.GetResults() {
		require.Nil(t, r.GetError(), "item %d", i)
		require.Equal(t, fmt.Sprint(i), r.GetJob().GetLabels()["i"], "results in request order")
		seen[r.GetJob().GetName()] = true
	}
	require.Len(t, seen, 1000)

	// Invalid items among valid ones, across the store's script calls of
	// up to 64 jobs: every answer stays at its item.
	mixed := &jobforgev1.BatchCreateJobsRequest{}
	for i := range 200 {
		typ := "simulate"
		if i%67 == 0 || i == 64 || i == 199 {
			typ = "nope"
		}
		mixed.Requests = append(mixed.Requests, &jobforgev1.CreateJobRequest{Job: &jobforgev1.Job{
			Type: typ, Labels: map[string]string{"batch": "mixed", "i": fmt.Sprint(i)},
		}})
	}
	out, err = b.client.BatchCreateJobs(ctx, mixed)
	require.NoError(t, err)
	require.Len(t, out.GetResults(), 200)
	for i, r := range out.GetResults() {
		if mixed.GetRequests()[i].GetJob().GetType() == "nope" {
			require.Contains(t, r.GetError().GetMessage(), fmt.Sprintf("requests[%d].job.type", i))
			continue
		}
		require.Nil(t, r.GetError(), "item %d", i)
		require.Equal(t, fmt.Sprint(i), r.GetJob().GetLabels()["i"], "results in request order")
	}

	big.Requests = append(big.Requests, big.Requests[0])
	_, err = b.client.BatchCreateJobs(ctx, big)
	require.Equal(t, codes.InvalidArgument, status.Code(err), "more than 1000 items")
}

func TestListJobs(t *testing.T) {
	t.Parallel()
	b := setup(t, redistest.NewDB(t))
	ctx := context.Background()
	var names []string
	for i := range 7 {
		team := []string{"data", "web"}[i%2]
		typ := []string{"simulate", "primes"}[i%2]
		payload := map[string]string{"simulate": `{}`, "primes": `{"limit":10}`}[typ]
		j := b.create(t, fmt.Sprintf(`{"type":%q,"payload":%s,"labels":{"team":%q}}`, typ, payload, team))
		names = append(names, j["name"].(string))
	}
	cancelled := b.create(t, `{"type":"simulate","scheduleDelay":"3600s","labels":{"team":"data"}}`)
	_, err := b.client.CancelJob(ctx, &jobforgev1.CancelJobRequest{Name: cancelled["name"].(string)})
	require.NoError(t, err)
	names = append(names, cancelled["name"].(string))

	list := func(filter string, size int32) []string {
		var got []string
		token := ""
		pages := 0
		for {
			resp, err := b.client.ListJobs(ctx, &jobforgev1.ListJobsRequest{Filter: filter, PageSize: size, PageToken: token})
			require.NoError(t, err, filter)
			for _, j := range resp.GetJobs() {
				got = append(got, j.GetName())
			}
			pages++
			require.Less(t, pages, 50)
			if token = resp.GetNextPageToken(); token == "" {
				return got
			}
		}
	}
	reversed := func(xs []string) []string {
		out := make([]string, len(xs))
		for i, x := range xs {
			out[len(xs)-1-i] = x
		}
		return out
	}
	require.Equal(t, reversed(names), list("", 0), "newest first")
	require.Equal(t, reversed(names), list("", 3), "paged by 3")
	require.Len(t, list(`labels.team = "data"`, 2), 5)
	require.Len(t, list(`type = primes AND labels.team = web`, 0), 3)
	require.Equal(t, []string{cancelled["name"].(string)}, list(`state = CANCELLED`, 0))
	require.Len(t, list(`state != CANCELLED AND queue = default`, 0), 4)
	require.Empty(t, list(`create_time < "2001-01-01T00:00:00Z"`, 0))
	require.Len(t, list(`create_time > "2001-01-01T00:00:00Z"`, 0), 8)

	// Over REST, and the error cases.
	code, resp, _ := b.do(t, "GET", "/v1/jobs?pageSize=2&filter=state%3DCANCELLED", "")
	require.Equal(t, http.StatusOK, code, "%v", resp)
	require.Len(t, resp["jobs"], 1)

	first, err := b.client.ListJobs(ctx, &jobforgev1.ListJobsRequest{PageSize: 2})
	require.NoError(t, err)
	token := first.GetNextPageToken()
	require.NotEmpty(t, token)
	bad := []struct{ name, query, want string }{
		{"negative page size", "pageSize=-1", "page_size"},
		{"forged token", "pageToken=eyJzIjoxfQ.AAAA", "page_token"},
		{"token of another filter", "filter=type%3Dprimes&pageToken=" + token, "different filter"},
		{"tampered token", "pageToken=" + strings.Replace(token, token[5:6], map[bool]string{true: "A", false: "B"}[token[5:6] != "A"], 1), "page_token"},
		{"unknown field", "filter=color%3Dred", `unknown field "color"`},
		{"bad state", "filter=state%3DDONE", `unknown state "DONE"`},
		{"or unsupported", "filter=type%3Da%20OR%20type%3Db", "OR is not supported"},
		{"bad time", "filter=create_time%3E%22yesterday%22", "RFC 3339"},
	}
	for _, tt := range bad {
		code, resp, _ := b.do(t, "GET", "/v1/jobs?"+tt.query, "")
		require.Equal(t, http.StatusBadRequest, code, "%s: %v", tt.name, resp)
		require.Contains(t, resp["message"], tt.want, tt.name)
	}
}

// watchREST reads an NDJSON watch until it ends or stop says so.
func watchREST(t *testing.T, url string, stop func(ev map[string]any) bool) []map[string]any {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var out []map[string]any
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &line), sc.Text())
		require.Nil(t, line["error"], "stream error: %v", line)
		ev := line["result"].(map[string]any)
		out = append(out, ev)
		if stop != nil && stop(ev) {
			return out
		}
	}
	return out
}

func TestWatch(t *testing.T) {
	t.Parallel()
	b := setupWithWorker(t)
	ctx := context.Background()

	check := func(t *testing.T, kinds []string, last map[string]any) {
		t.Helper()
		require.Equal(t, "SNAPSHOT", kinds[0])
		progress := 0
		for _, k := range kinds {
			if k == "PROGRESS" {
				progress++
			}
		}
		require.GreaterOrEqual(t, progress, 3)
		require.Equal(t, "STATE_CHANGED", last["kind"])
		require.Equal(t, "SUCCEEDED", last["state"])
		require.Equal(t, float64(30), last["result"].(map[string]any)["checksum"])
	}

	t.Run("grpc", func(t *testing.T) {
		t.Parallel()
		job := b.create(t, `{"type":"report","payload":{"pages":4,"page_millis":100},"scheduleDelay":"0.3s"}`)
		stream, err := b.client.WatchJob(ctx, &jobforgev1.WatchJobRequest{Name: job["name"].(string)})
		require.NoError(t, err)
		var kinds []string
		var last map[string]any
		for {
			ev, err := stream.Recv()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			kinds = append(kinds, ev.GetKind().String())
			b, _ := protojson.Marshal(ev)
			last = map[string]any{}
			require.NoError(t, json.Unmarshal(b, &last))
		}
		check(t, kinds, last)
	})
	t.Run("rest ndjson with resume", func(t *testing.T) {
		t.Parallel()
		job := b.create(t, `{"type":"report","payload":{"pages":4,"page_millis":150},"scheduleDelay":"0.3s"}`)
		url := b.baseURL + "/v1/" + job["name"].(string) + ":watch"
		// Read until the second progress event, then disconnect.
		seenProgress := 0
		part1 := watchREST(t, url, func(ev map[string]any) bool {
			if ev["kind"] == "PROGRESS" {
				seenProgress++
			}
			return seenProgress == 2
		})
		part2 := watchREST(t, url+"?afterEventId="+part1[len(part1)-1]["id"].(string), nil)
		require.NotEqual(t, "SNAPSHOT", part2[0]["kind"], "a resumed watch sends no snapshot")
		all := append(part1, part2...)
		var kinds []string
		ids := map[string]bool{}
		for i, ev := range all {
			kinds = append(kinds, ev["kind"].(string))
			if i > 0 {
				require.False(t, ids[ev["id"].(string)], "duplicate event %v", ev["id"])
			}
			ids[ev["id"].(string)] = true
		}
		check(t, kinds, all[len(all)-1])
		// No gaps: the progress percentages are 25, 50, 75, 100 in order.
		var pcts []float64
		for _, ev := range all {
			if ev["kind"] == "PROGRESS" {
				pcts = append(pcts, ev["progress"].(map[string]any)["percent"].(float64))
			}
		}
		require.Equal(t, []float64{25, 50, 75, 100}, pcts)
	})
	t.Run("rest server-sent events", func(t *testing.T) {
		t.Parallel()
		job := b.create(t, `{"type":"report","payload":{"pages":4,"page_millis":100}}`)
		req, err := http.NewRequest("GET", b.baseURL+"/v1/"+job["name"].(string)+":watch", nil)
		require.NoError(t, err)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
		var kinds []string
		var last map[string]any
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		lastID := ""
		for sc.Scan() {
			line := sc.Text()
			if id, ok := strings.CutPrefix(line, "id: "); ok {
				require.NotEqual(t, lastID, id)
				lastID = id
			}
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				last = map[string]any{}
				require.NoError(t, json.Unmarshal([]byte(data), &last))
				kinds = append(kinds, last["kind"].(string))
			}
		}
		check(t, kinds, last)
	})
	t.Run("finished job sends its snapshot and ends", func(t *testing.T) {
		t.Parallel()
		job := b.create(t, `{"type":"simulate"}`)
		b.wait(t, job["name"].(string), inState("SUCCEEDED"), "finishes")
		evs := watchREST(t, b.baseURL+"/v1/"+job["name"].(string)+":watch", nil)
		require.Len(t, evs, 1)
		require.Equal(t, "SNAPSHOT", evs[0]["kind"])
		require.Equal(t, "SUCCEEDED", evs[0]["job"].(map[string]any)["state"])
	})
	t.Run("unknown job", func(t *testing.T) {
		t.Parallel()
		resp, err := http.Get(b.baseURL + "/v1/jobs/nope:watch")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
	})
}

// Watches beyond the store's limit are refused with RESOURCE_EXHAUSTED and
// a retry hint, and a slot frees up when a watch ends.
func TestWatchLimit(t *testing.T) {
	t.Parallel()
	s := newStack(t, redistest.NewDB(t), queue.StoreOptions{MaxWatchers: 1})
	srv := s.serve(t, api.Options{})
	client := jobforgev1.NewJobServiceClient(dial(t, srv.GRPCAddr()))
	// Streams end before the server stops (cleanups run last-in first-out).
	ctx, cancelAll := context.WithCancel(context.Background())
	t.Cleanup(cancelAll)
	job, err := client.CreateJob(ctx, &jobforgev1.CreateJobRequest{Job: &jobforgev1.Job{
		Type: "simulate", ScheduleDelay: durationpb.New(time.Hour),
	}})
	require.NoError(t, err)

	wctx, stop := context.WithCancel(ctx)
	first, err := client.WatchJob(wctx, &jobforgev1.WatchJobRequest{Name: job.GetName()})
	require.NoError(t, err)
	_, err = first.Recv() // the snapshot: the watch holds its slot now
	require.NoError(t, err)

	second, err := client.WatchJob(ctx, &jobforgev1.WatchJobRequest{Name: job.GetName()})
	require.NoError(t, err)
	_, err = second.Recv()
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	require.Equal(t, "TOO_MANY_WATCHES", grpcReason(err))

	stop()
	redistest.Eventually(t, 10*time.Second, func() bool {
		third, err := client.WatchJob(ctx, &jobforgev1.WatchJobRequest{Name: job.GetName()})
		if err != nil {
			return false
		}
		ev, err := third.Recv()
		return err == nil && ev.GetKind() == jobforgev1.JobEvent_SNAPSHOT
	}, "a watch slot frees up when a watch ends")
}
