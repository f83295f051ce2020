package api_test

import (
	"fmt"
	"math"
	"net/http"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
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
