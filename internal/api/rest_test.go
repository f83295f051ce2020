package api_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/api"
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
