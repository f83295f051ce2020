package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/jobforge/jobforge/internal/store"
)

// Store errors that mean "retry later" become UNAVAILABLE with a reason and
// a retry hint, and their text (which may name Redis hosts) is not sent.
func TestRetryLaterErrors(t *testing.T) {
	t.Parallel()
	// What the Redis store returns: the cause, marked with both sentinels.
	notReplicated := fmt.Errorf("%w: 0 of 1 replicas confirmed the write within 500ms: %w", store.ErrNotReplicated, store.ErrUnavailable)
	down := fmt.Errorf("dial tcp 10.0.0.7:6379: connection refused: %w", store.ErrUnavailable)
	tests := []struct {
		name, reason, message string
		err                   error
	}{
		{"not replicated", reasonNotReplicated, "retry with the same idempotency key", notReplicated},
		{"unreachable", reasonUnavailable, "temporarily unavailable", down},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			st, ok := status.FromError(toStatus(context.Background(), log, "CreateJob", tt.err))
			require.True(t, ok)
			require.Equal(t, codes.Unavailable, st.Code())
			require.Contains(t, st.Message(), tt.message)
			require.NotContains(t, st.Message(), "10.0.0.7")
			var info *errdetails.ErrorInfo
			var retry *errdetails.RetryInfo
			for _, d := range st.Details() {
				switch d := d.(type) {
				case *errdetails.ErrorInfo:
					info = d
				case *errdetails.RetryInfo:
					retry = d
				}
			}
			require.NotNil(t, info)
			require.Equal(t, tt.reason, info.GetReason())
			require.NotNil(t, retry)
			require.Equal(t, time.Second, retry.GetRetryDelay().AsDuration())
		})
	}
	require.False(t, errors.Is(down, store.ErrNotReplicated))
}
