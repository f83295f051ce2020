package api

import (
	"testing"

	"github.com/stretchr/testify/require"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
)

// The page size is lowered to exactly the maximum in the proto's rule.
func TestCoercePageSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		in, want int32
	}{
		{"unset", 0, 0},
		{"small", 10, 10},
		{"the maximum", 1000, 1000},
		{"above", 1001, 1000},
		{"negative is left to validation", -5, -5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := &jobforgev1.ListJobsRequest{PageSize: tt.in}
			coercePageSize(req)
			require.Equal(t, tt.want, req.GetPageSize())
		})
	}
	// Requests without a page size are untouched.
	coercePageSize(&jobforgev1.GetJobRequest{Name: "jobs/x"})
}
