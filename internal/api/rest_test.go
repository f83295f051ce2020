package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/api"
	"github.com/jobforge/jobforge/internal/redistest"
)

// TestRoutingErrors: a method a path does not support is 405 with the
// methods it does support in Allow; an unknown path is 404. Both in the
// API's error format.
func TestRoutingErrors(t *testing.T) {
	t.Parallel()
	s := setupSecure(t, api.Limits{}, 0)
	tests := []struct {
		name, method, path string
		contentType        string
		wantCode           int
		wantAllow          string
		wantReason         string
	}{
		{name: "PUT on the jobs collection", method: "PUT", path: "/v1/jobs", wantCode: 405, wantAllow: "GET, POST", wantReason: "METHOD_NOT_ALLOWED"},
		{name: "DELETE on a job", method: "DELETE", path: "/v1/jobs/0190c0de-0000-7000-8000-000000000000", wantCode: 405, wantAllow: "GET", wantReason: "METHOD_NOT_ALLOWED"},
		{name: "PATCH on a job", method: "PATCH", path: "/v1/jobs/x", wantCode: 405, wantAllow: "GET", wantReason: "METHOD_NOT_ALLOWED"},
		{name: "GET on a custom method", method: "GET", path: "/v1/jobs:batchCreate", wantCode: 405, wantAllow: "POST", wantReason: "METHOD_NOT_ALLOWED"},
		{name: "POST on job types", method: "POST", path: "/v1/jobTypes", wantCode: 405, wantAllow: "GET", wantReason: "METHOD_NOT_ALLOWED"},
		{name: "POST with curl's form content type is not turned into a GET", method: "POST", path: "/v1/jobTypes",
			contentType: "application/x-www-form-urlencoded", wantCode: 405, wantAllow: "GET", wantReason: "METHOD_NOT_ALLOWED"},
		{name: "DELETE on a queue", method: "DELETE", path: "/v1/queues/default", wantCode: 404, wantReason: "ROUTE_NOT_FOUND"},
		{name: "unknown collection", method: "GET", path: "/v1/nothing", wantCode: 404, wantReason: "ROUTE_NOT_FOUND"},
		{name: "path below a job", method: "GET", path: "/v1/jobs/x/y", wantCode: 404, wantReason: "ROUTE_NOT_FOUND"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := restReq{method: tt.method, path: tt.path}
			if tt.method != http.MethodGet && tt.method != http.MethodDelete {
				req.body = `{}`
			}
			if tt.contentType != "" {
				req.headers = map[string]string{"Content-Type": tt.contentType}
			}
			resp := s.rest(t, req)
			require.Equal(t, tt.wantCode, resp.code, "%v", resp.body)
			require.Equal(t, tt.wantAllow, resp.header.Get("Allow"))
			require.Equal(t, tt.wantReason, restReason(resp.body), "%v", resp.body)
			require.NotEmpty(t, messageOf(resp.body))
		})
	}
}

// TestPageSizeCoerced: a page size above the maximum is lowered to it
// (AIP-158), over REST and gRPC; a negative one is still an error.
func TestPageSizeCoerced(t *testing.T) {
	t.Parallel()
	s := setupSecure(t, api.Limits{}, 0)
	for range 2 {
		require.Equal(t, http.StatusOK, s.rest(t, restReq{path: "/v1/jobs", body: `{"type":"simulate","scheduleDelay":"3600s"}`}).code)
	}
	tests := []struct {
		name     string
		size     int32
		wantCode codes.Code
	}{
		{"the maximum", 1000, codes.OK},
		{"just above", 1001, codes.OK},
		{"far above", math.MaxInt32, codes.OK},
		{"negative", -1, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := s.rest(t, restReq{method: "GET", path: fmt.Sprintf("/v1/jobs?pageSize=%d", tt.size)})
			require.Equal(t, runtime.HTTPStatusFromCode(tt.wantCode), resp.code, "%v", resp.body)
			list, err := s.client.ListJobs(s.ctx("acme-admin"), &jobforgev1.ListJobsRequest{PageSize: tt.size})
			require.Equal(t, tt.wantCode, status.Code(err), "%v", err)
			if tt.wantCode == codes.OK {
				require.Len(t, resp.body["jobs"], 2)
				require.Len(t, list.GetJobs(), 2)
			}
		})
	}
}

// TestDurationsAsTyped: every duration of a request accepts Go-style
// values as people type them ("1m", "1h30m", "250ms") as well as
// protojson's seconds; responses render them as protojson does.
func TestDurationsAsTyped(t *testing.T) {
	t.Parallel()
	s := setupSecure(t, api.Limits{}, 0)
	tests := []struct {
		name, path, body string
		job              func(body map[string]any) map[string]any
		want             map[string]string // JSON path in the job → rendered duration
	}{
		{
			name: "create", path: "/v1/jobs",
			body: `{"type":"simulate","timeout":"1m30s","scheduleDelay":"1h","retryPolicy":{"initialBackoff":"250ms","maxBackoff":"1m"}}`,
			job:  func(b map[string]any) map[string]any { return b },
			want: map[string]string{"timeout": "90s", "retryPolicy.initialBackoff": "0.250s", "retryPolicy.maxBackoff": "60s"},
		},
		{
			name: "protojson form unchanged", path: "/v1/jobs",
			body: `{"type":"simulate","timeout":"90s","scheduleDelay":"3600s","retryPolicy":{"initialBackoff":"0.250s","maxBackoff":"60s"}}`,
			job:  func(b map[string]any) map[string]any { return b },
			want: map[string]string{"timeout": "90s", "retryPolicy.initialBackoff": "0.250s", "retryPolicy.maxBackoff": "60s"},
		},
		{
			name: "batch", path: "/v1/jobs:batchCreate",
			body: `{"requests":[{"job":{"type":"simulate","timeout":"2m","scheduleDelay":"30m"}}]}`,
			job: func(b map[string]any) map[string]any {
				return b["results"].([]any)[0].(map[string]any)["job"].(map[string]any)
			},
			want: map[string]string{"timeout": "120s"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := s.rest(t, restReq{path: tt.path, body: tt.body})
			require.Equal(t, http.StatusOK, resp.code, "%v", resp.body)
			job := tt.job(resp.body)
			require.Equal(t, "SCHEDULED", job["state"])
			for path, want := range tt.want {
				var v any = job
				for _, k := range strings.Split(path, ".") {
					v = v.(map[string]any)[k]
				}
				require.Equal(t, want, v, path)
			}
		})
	}
	t.Run("batch errors name the request", func(t *testing.T) {
		t.Parallel()
		resp := s.rest(t, restReq{path: "/v1/jobs:batchCreate",
			body: `{"requests":[{"job":{"type":"simulate"}},{"job":{"type":"simulate","timeout":"soon"}}]}`})
		require.Equal(t, http.StatusBadRequest, resp.code)
		require.Equal(t, []string{"requests[1].job.timeout"}, violationFields(resp.body))
	})
}

// violationFields are the fields of a REST error's BadRequest violations.
func violationFields(body map[string]any) []string {
	var fields []string
	details, _ := body["details"].([]any)
	for _, d := range details {
		d := d.(map[string]any)
		if d["@type"] != "type.googleapis.com/google.rpc.BadRequest" {
			continue
		}
		for _, v := range d["fieldViolations"].([]any) {
			fields = append(fields, v.(map[string]any)["field"].(string))
		}
	}
	return fields
}

// TestEmptyLists: list responses name their empty lists ({"jobs": []}).
func TestEmptyLists(t *testing.T) {
	t.Parallel()
	s := setupSecure(t, api.Limits{}, 0)
	tests := []struct{ path, field string }{
		{"/v1/jobs", "jobs"},
		{"/v1/jobs?filter=state%3DCANCELLED", "jobs"},
		{"/v1/workers", "workers"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			resp := s.rest(t, restReq{method: "GET", path: tt.path, as: "globex-admin"})
			require.Equal(t, http.StatusOK, resp.code, "%v", resp.body)
			require.Equal(t, []any{}, resp.body[tt.field], "%v", resp.body)
		})
	}
}

// TestQueryParameterErrors: a query parameter the gateway cannot parse is a
// field violation naming the field, like a body's.
func TestQueryParameterErrors(t *testing.T) {
	t.Parallel()
	s := setupSecure(t, api.Limits{}, 0)
	tests := []struct{ name, query, wantField, wantText string }{
		{"not a number", "pageSize=abc", "page_size", `expected a 32-bit integer, got "abc"`},
		{"not an integer", "pageSize=1.5", "page_size", "expected a 32-bit integer"},
		{"out of int32 range", "page_size=99999999999", "page_size", "expected a 32-bit integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := s.rest(t, restReq{method: "GET", path: "/v1/jobs?" + tt.query})
			require.Equal(t, http.StatusBadRequest, resp.code, "%v", resp.body)
			require.Equal(t, "INVALID_ARGUMENT", restReason(resp.body))
			require.Equal(t, []string{tt.wantField}, violationFields(resp.body))
			require.Contains(t, messageOf(resp.body), tt.wantField+": "+tt.wantText)
		})
	}
}

// TestIndex: / lists the port's entry points, as JSON or (for browsers)
// HTML, and every link leads somewhere.
func TestIndex(t *testing.T) {
	t.Parallel()
	st := newStack(t, redistest.NewDB(t))
	srv := st.serve(t, api.Options{Monitoring: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "queue UI")
	})})
	base := "http://" + srv.HTTPAddr()
	get := func(t *testing.T, path, accept string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		require.NoError(t, err)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, body
	}

	resp, body := get(t, "/", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var index struct {
		Links []struct{ Rel, Href, Title string }
	}
	require.NoError(t, json.Unmarshal(body, &index))
	var hrefs []string
	for _, l := range index.Links {
		hrefs = append(hrefs, l.Href)
	}
	require.Subset(t, hrefs, []string{"/docs", "/openapi.json", "/healthz", "/readyz", "/monitoring/", "/v1/jobTypes"})

	tests := []struct{ name, accept, wantType, wantText string }{
		{"curl", "*/*", "application/json", `"href":"/docs"`},
		{"JSON client", "application/json", "application/json", `"href":"/openapi.json"`},
		{"browser", "text/html,application/xhtml+xml,*/*;q=0.8", "text/html; charset=utf-8", `<a href="/docs">`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := get(t, "/", tt.accept)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, tt.wantType, resp.Header.Get("Content-Type"))
			require.Contains(t, string(body), tt.wantText)
		})
	}
	for _, href := range hrefs {
		t.Run("link "+href, func(t *testing.T) {
			t.Parallel()
			resp, _ := get(t, href, "")
			require.Equal(t, http.StatusOK, resp.StatusCode)
		})
	}
	t.Run("other paths are still 404", func(t *testing.T) {
		t.Parallel()
		resp, _ := get(t, "/nothing", "")
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
	})
}

// TestRESTOnGRPCPort: an HTTP/1.1 request sent to the gRPC port gets a
// plain answer pointing at the REST port; gRPC on that port is unaffected.
func TestRESTOnGRPCPort(t *testing.T) {
	t.Parallel()
	st := newStack(t, redistest.NewDB(t))
	srv := st.serve(t, api.Options{})
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	tests := []struct{ method, path, body string }{
		{"GET", "/v1/jobTypes", ""},
		{"POST", "/v1/jobs", `{"type":"simulate"}`},
		{"OPTIONS", "/", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(tt.method, "http://"+srv.GRPCAddr()+tt.path, strings.NewReader(tt.body))
			require.NoError(t, err)
			resp, err := client.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, http.StatusBadRequest, resp.StatusCode)
			require.Equal(t, "text/plain; charset=utf-8", resp.Header.Get("Content-Type"))
			require.Contains(t, string(body), "gRPC port")
			require.Contains(t, string(body), "http://"+srv.HTTPAddr()+"/v1/jobTypes")
		})
	}
	t.Run("gRPC still served", func(t *testing.T) {
		t.Parallel()
		types, err := jobforgev1.NewJobServiceClient(dial(t, srv.GRPCAddr())).ListJobTypes(context.Background(), &jobforgev1.ListJobTypesRequest{})
		require.NoError(t, err)
		require.NotEmpty(t, types.GetJobTypes())
	})
}
