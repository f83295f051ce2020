package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/api"
	"github.com/jobforge/jobforge/internal/redistest"
)

func TestMain(m *testing.M) { contractMain(m) } // contract_test.go

type bundle struct {
	client  jobforgev1.JobServiceClient
	baseURL string
}

// setup runs a real API server (no worker) against redisURL.
func setup(t *testing.T, redisURL string) *bundle {
	t.Helper()
	b, _ := setupStack(t, redisURL)
	return b
}

// setupStack is setup that also returns what the server was built from.
func setupStack(t *testing.T, redisURL string) (*bundle, *stack) {
	t.Helper()
	s := newStack(t, redisURL)
	srv := s.serve(t, api.Options{})
	conn := dial(t, srv.GRPCAddr())
	return &bundle{client: jobforgev1.NewJobServiceClient(conn), baseURL: "http://" + srv.HTTPAddr()}, s
}

func (b *bundle) do(t *testing.T, method, path, body string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, b.baseURL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		require.NoError(t, json.Unmarshal(raw, &out), "body: %s", raw)
	}
	return resp.StatusCode, out, resp.Header
}

func TestCreateAndGetOverREST(t *testing.T) {
	t.Parallel()
	b := setup(t, redistest.NewDB(t))

	code, job, hdr := b.do(t, "POST", "/v1/jobs", `{"type":"primes","payload":{"limit":1000},"labels":{"team":"data"}}`)
	require.Equal(t, http.StatusOK, code, "%v", job)
	require.Regexp(t, `^jobs/[0-9a-f-]{36}$`, job["name"])
	require.Equal(t, "PENDING", job["state"])
	require.Equal(t, "primes", job["type"])
	require.Equal(t, "cpu", job["queue"], "type default queue")
	require.Equal(t, map[string]any{"limit": float64(1000)}, job["payload"])
	require.Equal(t, float64(3), job["maxAttempts"])
	require.Equal(t, "600s", job["timeout"])
	require.NotEmpty(t, job["createTime"])
	require.NotEmpty(t, hdr.Get("X-Request-Id"), "REST calls go through the interceptor chain")

	code, got, _ := b.do(t, "GET", "/v1/"+job["name"].(string), "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, job["name"], got["name"])
	require.Equal(t, map[string]any{"team": "data"}, got["labels"])

	// The same job over gRPC.
	gj, err := b.client.GetJob(context.Background(), &jobforgev1.GetJobRequest{Name: job["name"].(string)})
	require.NoError(t, err)
	require.Equal(t, jobforgev1.Job_PENDING, gj.GetState())
	require.Equal(t, int64(1000), int64(gj.GetPayload().GetFields()["limit"].GetNumberValue()))
}

func TestCreateOverGRPC(t *testing.T) {
	t.Parallel()
	b := setup(t, redistest.NewDB(t))
	ctx := context.Background()
	payload, err := structpb.NewStruct(map[string]any{"pages": 2, "page_millis": 0})
	require.NoError(t, err)
	at := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	job, err := b.client.CreateJob(ctx, &jobforgev1.CreateJobRequest{Job: &jobforgev1.Job{
		Type: "report", Payload: payload, Queue: "critical", MaxAttempts: 7,
		Timeout: durationpb.New(90 * time.Second), ScheduleTime: timestamppb.New(at),
	}})
	require.NoError(t, err)
	require.Equal(t, jobforgev1.Job_SCHEDULED, job.GetState())
	require.Equal(t, "critical", job.GetQueue())
	require.Equal(t, int32(7), job.GetMaxAttempts())
	require.Equal(t, 90*time.Second, job.GetTimeout().AsDuration())
	require.True(t, at.Equal(job.GetScheduleTime().AsTime()))

	types, err := b.client.ListJobTypes(ctx, &jobforgev1.ListJobTypesRequest{})
	require.NoError(t, err)
	names := []string{}
	for _, jt := range types.GetJobTypes() {
		names = append(names, jt.GetName())
		require.NotNil(t, jt.GetExamplePayload())
		require.NotNil(t, jt.GetPayloadSchema())
		// Every example is accepted.
		_, err := b.client.CreateJob(ctx, &jobforgev1.CreateJobRequest{Job: &jobforgev1.Job{Type: jt.GetName(), Payload: jt.GetExamplePayload()}})
		require.NoError(t, err, jt.GetName())
	}
	require.Equal(t, []string{"primes", "report", "simulate"}, names)
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	b := setup(t, redistest.NewDB(t))
	tests := []struct {
		name      string
		body      string
		wantField string // first field violation; "" for decoding errors
		wantText  string
	}{
		{"missing type", `{"payload":{}}`, "job.type", "must be at least 1 characters"},
		{"unknown type", `{"type":"nope"}`, "job.type", `unknown job type "nope"`},
		{"bad type name", `{"type":"Nope!"}`, "job.type", "does not match regex"},
		{"payload missing field", `{"type":"primes","payload":{}}`, "job.payload.limit", "required"},
		{"payload wrong type", `{"type":"primes","payload":{"limit":"lots"}}`, "job.payload.limit", "must be an integer"},
		{"payload unknown field", `{"type":"primes","payload":{"limit":10,"x":1}}`, "job.payload.x", "unknown field"},
		{"unknown queue", `{"type":"primes","payload":{"limit":10},"queue":"nowhere"}`, "job.queue", `unknown queue "nowhere"`},
		{"too many attempts", `{"type":"primes","payload":{"limit":10},"maxAttempts":1000}`, "job.max_attempts", "less than or equal to 100"},
		{"negative timeout", `{"type":"primes","payload":{"limit":10},"timeout":"-5s"}`, "job.timeout", "greater than 0s"},
		{"schedule far future", `{"type":"primes","payload":{"limit":10},"scheduleTime":"2999-01-01T00:00:00Z"}`, "job.schedule_time", "at most 366 days ahead"},
		{"schedule far past", `{"type":"primes","payload":{"limit":10},"scheduleTime":"2001-01-01T00:00:00Z"}`, "job.schedule_time", "at most 24h in the past"},
		{"malformed json", `{"type":`, "", "malformed JSON"},
		// Decoding errors are field violations too.
		{"unknown top-level field", `{"type":"primes","bogus":1}`, "job.bogus", "unknown field"},
		{"misspelt field", `{"type":"primes","maxattempts":3}`, "job.maxattempts", `did you mean "maxAttempts"?`},
		{"wrong top-level type", `{"type":5}`, "job.type", "expected a string, got the number 5"},
		{"body not an object", `["primes"]`, "job", "expected a JSON object, got an array"},
		{"payload not an object", `{"type":"primes","payload":[1]}`, "job.payload", "expected a JSON object"},
		{"label value not a string", `{"type":"primes","labels":{"team":1}}`, `job.labels["team"]`, "expected a string"},
		{"attempts not an integer", `{"type":"primes","maxAttempts":"three"}`, "job.max_attempts", "expected a 32-bit integer"},
		{"unknown enum value", `{"type":"primes","state":"DONE"}`, "job.state", "expected one of PENDING"},
		{"malformed duration", `{"type":"primes","timeout":"1 minute"}`, "job.timeout", `write seconds with an "s" suffix ("90s", "0.5s") or Go-style units`},
		{"duration as a number", `{"type":"primes","timeout":60}`, "job.timeout", "invalid duration: got the number 60"},
		{"nested malformed duration", `{"type":"primes","retryPolicy":{"maxBackoff":"1x"}}`, "job.retry_policy.max_backoff", "invalid duration"},
		{"unknown nested field", `{"type":"primes","retryPolicy":{"maxBackof":"1m"}}`, "job.retry_policy.maxBackof", "unknown field"},
		{"malformed timestamp", `{"type":"primes","scheduleTime":"tomorrow"}`, "job.schedule_time", "RFC 3339"},
		{"timestamp without zone", `{"type":"primes","scheduleTime":"2030-01-01T00:00:00"}`, "job.schedule_time", `e.g. "2030-01-02T15:04:05Z"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, body, _ := b.do(t, "POST", "/v1/jobs", tt.body)
			require.Equal(t, http.StatusBadRequest, code, "%v", body)
			require.Equal(t, float64(codes.InvalidArgument), body["code"])
			require.Contains(t, body["message"], tt.wantText)
			if tt.wantField == "" {
				return
			}
			var fields []string
			for _, d := range body["details"].([]any) {
				d := d.(map[string]any)
				if d["@type"] == "type.googleapis.com/google.rpc.BadRequest" {
					for _, v := range d["fieldViolations"].([]any) {
						fields = append(fields, v.(map[string]any)["field"].(string))
					}
				}
				if d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo" {
					require.Equal(t, "INVALID_ARGUMENT", d["reason"])
					require.Equal(t, "jobforge.dev", d["domain"])
				}
			}
			require.NotEmpty(t, fields)
			require.Equal(t, tt.wantField, fields[0])
		})
	}

	// The server keeps serving after bad input.
	code, _, _ := b.do(t, "GET", "/v1/jobTypes", "")
	require.Equal(t, http.StatusOK, code)
}

func TestBadRequestOverGRPCHasFieldViolations(t *testing.T) {
	t.Parallel()
	b := setup(t, redistest.NewDB(t))
	_, err := b.client.CreateJob(context.Background(), &jobforgev1.CreateJobRequest{Job: &jobforgev1.Job{Type: "primes"}})
	st := status.Convert(err)
	require.Equal(t, codes.InvalidArgument, st.Code())
	var br *errdetails.BadRequest
	for _, d := range st.Details() {
		if v, ok := d.(*errdetails.BadRequest); ok {
			br = v
		}
	}
	require.NotNil(t, br)
	require.Equal(t, "job.payload.limit", br.GetFieldViolations()[0].GetField())

	_, err = b.client.CreateJob(context.Background(), &jobforgev1.CreateJobRequest{})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "job: value is required")
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	b := setup(t, redistest.NewDB(t))
	code, body, _ := b.do(t, "GET", "/v1/jobs/0190c0de-0000-7000-8000-000000000000", "")
	require.Equal(t, http.StatusNotFound, code)
	require.Equal(t, `job "jobs/0190c0de-0000-7000-8000-000000000000" not found`, body["message"])

	code, _, _ = b.do(t, "GET", "/v1/jobs/bad%20id", "")
	require.Equal(t, http.StatusBadRequest, code)

	_, err := b.client.GetJob(context.Background(), &jobforgev1.GetJobRequest{Name: "jobs/missing"})
	require.Equal(t, codes.NotFound, status.Code(err))
}

func TestRedisDownIsUnavailableWithoutLeakingDetails(t *testing.T) {
	t.Parallel()
	srv := redistest.NewServer(t, redistest.Durable()) // Redis as production runs it: the catalogue survives
	b := setup(t, srv.URL(0))
	srv.Stop()

	code, body, _ := b.do(t, "POST", "/v1/jobs", `{"type":"primes","payload":{"limit":10}}`)
	require.Equal(t, http.StatusServiceUnavailable, code, "%v", body)
	require.Equal(t, "job store temporarily unavailable; retry shortly", body["message"])
	require.NotContains(t, strings.ToLower(body["message"].(string)), "dial")

	resp, err := http.Get(b.baseURL + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)

	require.NoError(t, srv.Start())
	redistest.Eventually(t, 10*time.Second, func() bool {
		code, _, _ := b.do(t, "POST", "/v1/jobs", `{"type":"primes","payload":{"limit":10}}`)
		return code == http.StatusOK
	}, "API recovers when Redis returns")
}

func TestHealthAndOpenAPI(t *testing.T) {
	t.Parallel()
	b := setup(t, redistest.NewDB(t))
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(b.baseURL + path)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
	code, doc, _ := b.do(t, "GET", "/openapi.json", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, doc["paths"], "/v1/jobs")
}

// TestShutdownClosesUnusedConnections: a connection that never sent a
// request does not hold up shutdown. (net/http would wait until it is 5 s
// old, past the ShutdownTimeout here: Run would fail.)
func TestShutdownClosesUnusedConnections(t *testing.T) {
	t.Parallel()
	s := newStack(t, redistest.NewDB(t))
	srv, err := api.NewServer(api.Options{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", ShutdownTimeout: 5 * time.Second,
		Ready: s.store.Ping, Logger: s.log,
	}, s.svc)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()

	unused, err := net.Dial("tcp", srv.HTTPAddr())
	require.NoError(t, err)
	defer unused.Close()
	// The server accepts connections in order: once a request on a later
	// connection is answered, it has accepted the unused one.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + srv.HTTPAddr() + "/healthz")
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)

	cancel()
	require.NoError(t, <-done)
	_, err = unused.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF, "the server closed the unused connection")
}
