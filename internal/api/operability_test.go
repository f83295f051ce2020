package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/api"
	"github.com/jobforge/jobforge/internal/auth"
	"github.com/jobforge/jobforge/internal/queue"
	"github.com/jobforge/jobforge/internal/redistest"
	"github.com/jobforge/jobforge/internal/telemetry"
	"github.com/jobforge/jobforge/jobs"
	"github.com/jobforge/jobforge/jobs/builtin"
)

// opStack is an API server and a worker wired as the processes wire them:
// one Prometheus registry with the job metrics, an admin server, a tracer
// provider recording to memory, cluster queue stats, and JSON logs
// (through telemetry.LogHandler) captured for inspection.
type opStack struct {
	baseURL, adminURL string
	grpc              jobforgev1.JobServiceClient
	health            healthpb.HealthClient
	spans             *tracetest.InMemoryExporter
	logs              *logBuffer
}

type opStackOptions struct {
	auth      *auth.Authenticator
	noTracing bool // api and worker get no tracer provider (tracing not configured)
}

func startOpStack(t *testing.T, redisURL string, opts opStackOptions) *opStack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &logBuffer{}
	out := io.Writer(logs)
	if testing.Verbose() {
		out = io.MultiWriter(logs, testWriter{t})
	}
	log := slog.New(telemetry.LogHandler(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug})))
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	var useTP trace.TracerProvider = tp
	if opts.noTracing {
		useTP = nil
	}
	reg := telemetry.NewRegistry()
	metrics, err := queue.NewMetrics(reg)
	require.NoError(t, err)

	rdb, err := queue.Connect(ctx, redisURL)
	require.NoError(t, err)
	types, err := jobs.NewRegistry(builtin.Types()...)
	require.NoError(t, err)
	store := queue.NewStore(rdb, log, queue.StoreOptions{Metrics: metrics})
	svc := api.NewService(store, publishedCatalog(t, rdb, types), []string{"critical", "default", "cpu"}, []byte("test-key"), log)
	srv, err := api.NewServer(api.Options{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", ShutdownTimeout: 5 * time.Second,
		Ready: store.Ping, Logger: log, Auth: opts.auth,
		Metrics: reg, TracerProvider: useTP, Monitoring: queue.MonitoringHandler(rdb, "/monitoring"),
	}, svc)
	require.NoError(t, err)
	admin, err := telemetry.NewAdmin(telemetry.AdminOptions{Addr: "127.0.0.1:0", Gatherer: reg, Ready: store.Ping, Logger: log})
	require.NoError(t, err)
	stats := queue.NewQueueStats(rdb, queue.QueueStatsOptions{
		Queues: []string{"critical", "default", "cpu"}, Interval: 50 * time.Millisecond, Logger: log,
	})
	reg.MustRegister(stats)
	w := queue.NewWorker(rdb, types, queue.WorkerOptions{
		Pools: []queue.Pool{
			{Name: "io", Queues: map[string]int{"critical": 2, "default": 1}, Concurrency: 4},
			{Name: "cpu", Queues: map[string]int{"cpu": 1}, Concurrency: 1},
		},
		PollInterval: 5 * time.Millisecond, DelayedCheckInterval: 50 * time.Millisecond,
		ShutdownTimeout: 2 * time.Second, Retention: time.Hour,
		Backoff: func(int) time.Duration { return 10 * time.Millisecond },
		Logger:  log, Metrics: metrics, TracerProvider: useTP,
	})
	require.NoError(t, w.Start())

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(3)
	go func() { defer wg.Done(); errs <- srv.Run(ctx) }()
	go func() { defer wg.Done(); errs <- admin.Run(ctx, nil) }()
	go func() { defer wg.Done(); stats.Run(ctx) }()
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = conn.Close()
		w.Shutdown()
		cancel()
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		_ = tp.Shutdown(context.Background())
		_ = rdb.Close()
	})
	return &opStack{
		baseURL:  "http://" + srv.HTTPAddr(),
		adminURL: "http://" + admin.Addr(),
		grpc:     jobforgev1.NewJobServiceClient(conn),
		health:   healthpb.NewHealthClient(conn),
		spans:    spans,
		logs:     logs,
	}
}

// createREST creates a job over REST with optional extra headers and
// returns its id.
func (s *opStack) createREST(t *testing.T, body string, header http.Header) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.baseURL+"/v1/jobs", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", raw)
	var job struct{ Name string }
	require.NoError(t, json.Unmarshal(raw, &job))
	return strings.TrimPrefix(job.Name, "jobs/")
}

func (s *opStack) waitState(t *testing.T, id string, want jobforgev1.Job_State) {
	t.Helper()
	redistest.Eventually(t, 20*time.Second, func() bool {
		j, err := s.grpc.GetJob(context.Background(), &jobforgev1.GetJobRequest{Name: "jobs/" + id})
		return err == nil && j.GetState() == want
	}, "job %s did not reach %s", id, want)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// scrape reads one sample of the admin port's /metrics, e.g.
// `jobforge_jobs_failed_total{queue="default",type="simulate"}`; absent is 0.
func (s *opStack) scrape(t *testing.T) func(series string) float64 {
	t.Helper()
	code, body := get(t, s.adminURL+"/metrics")
	require.Equal(t, http.StatusOK, code)
	samples := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, line)
		samples[line[:i]] = v
	}
	return func(series string) float64 { return samples[series] }
}

// TestMetricsCountJobOutcomes runs a known mix of jobs and checks the
// scraped counters: k jobs succeed at once, r succeed after one failed
// attempt, m fail for good, c are cancelled before they run.
func TestMetricsCountJobOutcomes(t *testing.T) {
	t.Parallel()
	s := startOpStack(t, redistest.NewDB(t), opStackOptions{})
	const k, r, m, c = 3, 2, 2, 1

	var ids []string
	for range k {
		ids = append(ids, s.createREST(t, `{"type":"simulate","payload":{"outcome":"succeed"}}`, nil))
	}
	for range r {
		ids = append(ids, s.createREST(t, `{"type":"simulate","payload":{"fail_times":1}}`, nil))
	}
	var failed []string
	for range m {
		failed = append(failed, s.createREST(t, `{"type":"simulate","payload":{"outcome":"fail"},"maxAttempts":2}`, nil))
	}
	for range c {
		j, err := s.grpc.CreateJob(context.Background(), &jobforgev1.CreateJobRequest{Job: &jobforgev1.Job{
			Type: "simulate", Payload: &structpb.Struct{}, ScheduleTime: timestampIn(time.Hour),
		}})
		require.NoError(t, err)
		_, err = s.grpc.CancelJob(context.Background(), &jobforgev1.CancelJobRequest{Name: j.GetName()})
		require.NoError(t, err)
	}
	for _, id := range ids {
		s.waitState(t, id, jobforgev1.Job_SUCCEEDED)
	}
	for _, id := range failed {
		s.waitState(t, id, jobforgev1.Job_FAILED)
	}

	series := func(name string) string { return name + `{queue="default",type="simulate"}` }
	var sample func(string) float64
	// The outcome is recorded, and the slot freed, just before and just
	// after the worker's handler returns.
	redistest.Eventually(t, 5*time.Second, func() bool {
		sample = s.scrape(t)
		return sample(series("jobforge_jobs_succeeded_total")) == k+r && sample(series("jobforge_jobs_failed_total")) == m &&
			sample(`jobforge_worker_slots_busy{pool="io"}`) == 0
	}, "succeeded/failed counters, free slots")
	tests := []struct {
		series string
		want   float64
	}{
		{series("jobforge_jobs_created_total"), k + r + m + c},
		{series("jobforge_jobs_started_total"), k + 2*r + 2*m}, // every attempt
		{series("jobforge_jobs_succeeded_total"), k + r},
		{series("jobforge_jobs_failed_total"), m},
		{series("jobforge_jobs_retried_total"), r + m}, // the first attempt of each
		{series("jobforge_jobs_cancelled_total"), c},
		{`jobforge_job_run_duration_seconds_count{type="simulate"}`, k + 2*r + 2*m},
		{`jobforge_job_queue_wait_seconds_count{type="simulate"}`, k + r + m},
		{`jobforge_worker_slots{pool="io"}`, 4},
		{`jobforge_worker_slots{pool="cpu"}`, 1},
		{`jobforge_worker_slots_busy{pool="io"}`, 0},
		{`grpc_server_handled_total{grpc_code="OK",grpc_method="CreateJob",grpc_service="jobforge.v1.JobService",grpc_type="unary",transport="http"}`, k + r + m},
		{`grpc_server_handled_total{grpc_code="OK",grpc_method="CreateJob",grpc_service="jobforge.v1.JobService",grpc_type="unary",transport="grpc"}`, c},
		{`jobforge_http_requests_total{code="200",handler="api",method="post"}`, k + r + m},
	}
	for _, tt := range tests {
		t.Run(tt.series, func(t *testing.T) {
			require.Equal(t, tt.want, sample(tt.series))
		})
	}
}

func timestampIn(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(time.Now().Add(d)) }

// TestQueueMetricsExportedOnceForCluster runs two API-side exporters on one
// Redis: exactly one exports the jobforge_queue_* series, and the other
// takes over when it stops.
func TestQueueMetricsExportedOnceForCluster(t *testing.T) {
	t.Parallel()
	url := redistest.NewDB(t)
	a := startOpStack(t, url, opStackOptions{})
	b := startOpStack(t, url, opStackOptions{})
	j, err := a.grpc.CreateJob(context.Background(), &jobforgev1.CreateJobRequest{Job: &jobforgev1.Job{
		Type: "simulate", Payload: &structpb.Struct{}, ScheduleTime: timestampIn(time.Hour),
	}})
	require.NoError(t, err)
	require.Equal(t, jobforgev1.Job_SCHEDULED, j.GetState())
	pending := `jobforge_queue_jobs{queue="default",state="scheduled"}`
	redistest.Eventually(t, 5*time.Second, func() bool {
		sa, sb := a.scrape(t), b.scrape(t)
		exporters := sa("jobforge_queue_stats_exporter") + sb("jobforge_queue_stats_exporter")
		return exporters == 1 && sa(pending)+sb(pending) == 1
	}, "exactly one replica exports the queue metrics")
}

// TestTraceFollowsJobFromRequestToWorker shows one trace holding the API's
// span for the create request and the worker's span for the attempt.
func TestTraceFollowsJobFromRequestToWorker(t *testing.T) {
	t.Parallel()
	s := startOpStack(t, redistest.NewDB(t), opStackOptions{})
	const callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	tests := []struct {
		name      string
		create    func(t *testing.T) string
		apiSpans  []string // from outermost to the one the job's span is a child of
		wantTrace string   // the caller's own trace, when it sent one
	}{
		{
			name: "REST",
			create: func(t *testing.T) string {
				return s.createREST(t, `{"type":"simulate","payload":{}}`, nil)
			},
			apiSpans: []string{"HTTP POST", "jobforge.v1.JobService/CreateJob"},
		},
		{
			name: "REST continuing the caller's trace",
			create: func(t *testing.T) string {
				return s.createREST(t, `{"type":"simulate","payload":{}}`,
					http.Header{"Traceparent": {"00-" + callerTrace + "-00f067aa0ba902b7-01"}})
			},
			apiSpans:  []string{"HTTP POST", "jobforge.v1.JobService/CreateJob"},
			wantTrace: callerTrace,
		},
		{
			name: "gRPC",
			create: func(t *testing.T) string {
				j, err := s.grpc.CreateJob(context.Background(), &jobforgev1.CreateJobRequest{Job: &jobforgev1.Job{
					Type: "simulate", Payload: &structpb.Struct{},
				}})
				require.NoError(t, err)
				return strings.TrimPrefix(j.GetName(), "jobs/")
			},
			apiSpans: []string{"jobforge.v1.JobService/CreateJob"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := tt.create(t)
			s.waitState(t, id, jobforgev1.Job_SUCCEEDED)

			var job tracetest.SpanStub
			redistest.Eventually(t, 5*time.Second, func() bool {
				for _, sp := range s.spans.GetSpans() {
					if sp.Name == "job simulate" && attr(sp, "jobforge.job.id") == id {
						job = sp
						return true
					}
				}
				return false
			}, "no worker span for job %s", id)
			require.Equal(t, trace.SpanKindConsumer, job.SpanKind)
			require.Equal(t, "1", attr(job, "jobforge.job.attempt"))
			require.Equal(t, "SUCCEEDED", attr(job, "jobforge.job.outcome"))

			// Walk up from the worker's span: each parent is the API span
			// expected, all in one trace.
			byID := map[trace.SpanID]tracetest.SpanStub{}
			for _, sp := range s.spans.GetSpans() {
				byID[sp.SpanContext.SpanID()] = sp
			}
			child := job
			for i := len(tt.apiSpans) - 1; i >= 0; i-- {
				parent, ok := byID[child.Parent.SpanID()]
				require.True(t, ok, "parent of %q is not a recorded span", child.Name)
				require.Equal(t, tt.apiSpans[i], parent.Name)
				require.Equal(t, job.SpanContext.TraceID(), parent.SpanContext.TraceID())
				child = parent
			}
			require.Equal(t, trace.SpanKindServer, child.SpanKind)
			if tt.wantTrace != "" {
				require.Equal(t, tt.wantTrace, job.SpanContext.TraceID().String())
				require.Equal(t, "00f067aa0ba902b7", child.Parent.SpanID().String())
			} else {
				require.False(t, child.Parent.IsValid(), "%q starts the trace", child.Name)
			}
		})
	}
}

func attr(sp tracetest.SpanStub, key string) string {
	for _, kv := range sp.Attributes {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// TestWorkerLogLinesCarryJobAndTraceIDs checks the worker's log lines of a
// job: job id, type, queue, attempt and the trace id of the request that
// created it, and never the payload.
func TestWorkerLogLinesCarryJobAndTraceIDs(t *testing.T) {
	t.Parallel()
	s := startOpStack(t, redistest.NewDB(t), opStackOptions{})
	const secret = "s3cr3t-payload-value"
	const traceID = "0af7651916cd43dd8448eb211c80319c"
	id := s.createREST(t, `{"type":"simulate","payload":{"fail_times":1,"result":{"token":"`+secret+`"}}}`,
		http.Header{"Traceparent": {"00-" + traceID + "-b7ad6b7169203331-01"}})
	s.waitState(t, id, jobforgev1.Job_SUCCEEDED)

	var lines []map[string]any
	redistest.Eventually(t, 5*time.Second, func() bool {
		lines = s.logs.lines(t, func(m map[string]any) bool { return m["job_id"] == id })
		return slices.ContainsFunc(lines, func(m map[string]any) bool { return m["msg"] == "job succeeded" })
	}, "no 'job succeeded' line for %s", id)
	byMsg := map[string]map[string]any{}
	for _, l := range lines {
		byMsg[l["msg"].(string)] = l
	}
	tests := []struct {
		msg     string
		attempt float64
	}{
		{"job attempt failed", 1},
		{"job succeeded", 2},
	}
	for _, tt := range tests {
		t.Run(tt.msg, func(t *testing.T) {
			l, ok := byMsg[tt.msg]
			require.True(t, ok, "no %q line among %v", tt.msg, lines)
			require.Equal(t, "simulate", l["type"])
			require.Equal(t, "default", l["queue"])
			require.Equal(t, tt.attempt, l["attempt"])
			require.Equal(t, traceID, l["trace_id"])
			require.Regexp(t, regexp.MustCompile(`^[0-9a-f]{16}$`), l["span_id"])
		})
	}
	require.NotContains(t, s.logs.String(), secret, "a payload value was logged")
}

// TestCallerTraceFlowsWithTracingOff checks that a caller's trace context
// reaches the job over both transports when the API and the worker record
// no spans: the worker's log lines of the job carry the caller's trace id.
func TestCallerTraceFlowsWithTracingOff(t *testing.T) {
	t.Parallel()
	s := startOpStack(t, redistest.NewDB(t), opStackOptions{noTracing: true})
	tests := []struct {
		name    string
		traceID string // sent by the caller; "" sends none
		create  func(t *testing.T, traceparent string) string
	}{
		{"gRPC", "4bf92f3577b34da6a3ce929d0e0e4736", s.createGRPC},
		{"REST", "5bf92f3577b34da6a3ce929d0e0e4737", s.createRESTTraced},
		{"gRPC without a trace", "", s.createGRPC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp := ""
			if tt.traceID != "" {
				tp = "00-" + tt.traceID + "-00f067aa0ba902b7-01"
			}
			id := tt.create(t, tp)
			s.waitState(t, id, jobforgev1.Job_SUCCEEDED)
			var line map[string]any
			redistest.Eventually(t, 5*time.Second, func() bool {
				ls := s.logs.lines(t, func(m map[string]any) bool { return m["job_id"] == id && m["msg"] == "job succeeded" })
				if len(ls) > 0 {
					line = ls[0]
				}
				return line != nil
			}, "no 'job succeeded' line for %s", id)
			if tt.traceID == "" {
				require.NotContains(t, line, "trace_id")
				return
			}
			require.Equal(t, tt.traceID, line["trace_id"])
		})
	}
	require.Empty(t, s.spans.GetSpans(), "spans recorded with tracing off")
}

func (s *opStack) createGRPC(t *testing.T, traceparent string) string {
	t.Helper()
	ctx := context.Background()
	if traceparent != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "traceparent", traceparent)
	}
	j, err := s.grpc.CreateJob(ctx, &jobforgev1.CreateJobRequest{Job: &jobforgev1.Job{Type: "simulate", Payload: &structpb.Struct{}}})
	require.NoError(t, err)
	return strings.TrimPrefix(j.GetName(), "jobs/")
}

func (s *opStack) createRESTTraced(t *testing.T, traceparent string) string {
	return s.createREST(t, `{"type":"simulate","payload":{}}`, http.Header{"Traceparent": {traceparent}})
}

// TestReadinessFollowsRedis stops and restarts Redis under a running API:
// /readyz on the public and admin ports and the gRPC health service turn
// unhealthy within a second and healthy again when Redis is back.
func TestReadinessFollowsRedis(t *testing.T) {
	t.Parallel()
	rs := redistest.NewServer(t)
	s := startOpStack(t, rs.URL(0), opStackOptions{})
	probes := map[string]func() bool{
		"public /readyz": func() bool { code, _ := get(t, s.baseURL+"/readyz"); return code == http.StatusOK },
		"admin /readyz":  func() bool { code, _ := get(t, s.adminURL+"/readyz"); return code == http.StatusOK },
		"grpc health": func() bool {
			r, err := s.health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "jobforge.v1.JobService"})
			return err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING
		},
	}
	all := func(want bool) func() bool {
		return func() bool {
			for _, p := range probes {
				if p() != want {
					return false
				}
			}
			return true
		}
	}
	redistest.Eventually(t, 5*time.Second, all(true), "ready at start")
	// /healthz is liveness: it never depends on Redis.
	healthz := func() { code, _ := get(t, s.adminURL+"/healthz"); require.Equal(t, http.StatusOK, code) }

	rs.Stop()
	redistest.Eventually(t, time.Second, all(false), "still ready 1s after Redis went away")
	healthz()

	require.NoError(t, rs.Start())
	redistest.Eventually(t, 10*time.Second, all(true), "not ready again after Redis came back")
	healthz()
}

// TestPublicAndAdminPorts checks what each port serves: the docs UI, the
// OpenAPI document and the read-only queue UI on the public port; metrics
// and pprof only on the admin port.
func TestPublicAndAdminPorts(t *testing.T) {
	t.Parallel()
	s := startOpStack(t, redistest.NewDB(t), opStackOptions{})
	tests := []struct {
		name     string
		method   string
		url      string
		wantCode int
		wantBody string
	}{
		{"docs page", "GET", s.baseURL + "/docs", 200, "swagger-ui"},
		{"docs asset", "GET", s.baseURL + "/docs/swagger-ui-bundle.js", 200, "SwaggerUIBundle"},
		{"openapi", "GET", s.baseURL + "/openapi.json", 200, `"JobService"`},
		{"queue ui", "GET", s.baseURL + "/monitoring/", 200, "<div id=\"root\">"},
		{"queue ui redirect", "GET", s.baseURL + "/monitoring", 200, "<div id=\"root\">"},
		{"queue api", "GET", s.baseURL + "/monitoring/api/queues", 200, "queues"},
		{"queue ui is read-only", "POST", s.baseURL + "/monitoring/api/queues/default:pause", 405, "read-only"},
		{"no pprof on public port", "GET", s.baseURL + "/debug/pprof/", 404, ""},
		{"no metrics on public port", "GET", s.baseURL + "/metrics", 404, ""},
		{"pprof on admin port", "GET", s.adminURL + "/debug/pprof/", 200, "goroutine"},
		{"metrics on admin port", "GET", s.adminURL + "/metrics", 200, "go_goroutines"},
		{"healthz on admin port", "GET", s.adminURL + "/healthz", 200, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(tt.method, tt.url, nil)
			require.NoError(t, err)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, tt.wantCode, resp.StatusCode, "%s", body)
			require.Contains(t, string(body), tt.wantBody)
		})
	}
}

// TestMonitoringNeedsAdminWhenAuthIsOn checks that the queue UI takes the
// same credentials as the admin API, as a bearer token or as the password
// of HTTP Basic authentication (which browsers send by themselves).
func TestMonitoringNeedsAdminWhenAuthIsOn(t *testing.T) {
	t.Parallel()
	const adminToken, readerToken = "jfk_admin.0123456789abcdef", "jfk_reader.0123456789abcdef"
	a, err := auth.New([]auth.Key{
		auth.HashedKey(adminToken, "admin", "default", auth.AllScopes),
		auth.HashedKey(readerToken, "reader", "default", []string{auth.ScopeJobsRead}),
	}, nil)
	require.NoError(t, err)
	s := startOpStack(t, redistest.NewDB(t), opStackOptions{auth: a})
	tests := []struct {
		name     string
		set      func(*http.Request)
		wantCode int
	}{
		{"no credentials", func(*http.Request) {}, http.StatusUnauthorized},
		{"bad token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer nope") }, http.StatusUnauthorized},
		{"without admin scope", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+readerToken) }, http.StatusForbidden},
		{"admin bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+adminToken) }, http.StatusOK},
		{"admin basic", func(r *http.Request) { r.SetBasicAuth("ops", adminToken) }, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(http.MethodGet, s.baseURL+"/monitoring/api/queues", nil)
			require.NoError(t, err)
			tt.set(req)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			_ = resp.Body.Close()
			require.Equal(t, tt.wantCode, resp.StatusCode)
			if tt.wantCode == http.StatusUnauthorized {
				require.Contains(t, resp.Header.Get("WWW-Authenticate"), "Basic")
			}
		})
	}
	code, _ := get(t, s.baseURL+"/docs")
	require.Equal(t, http.StatusOK, code, "the API reference needs no credentials")
}

// logBuffer collects JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) lines(t *testing.T, keep func(map[string]any) bool) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(b.String(), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		if keep(m) {
			out = append(out, m)
		}
	}
	return out
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
