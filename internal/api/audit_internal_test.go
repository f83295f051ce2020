package api

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/auth"
	"github.com/jobforge/jobforge/internal/store"
)

// Audit lines carry the fields docs/operations.md lists, the caller first,
// and are left out below Info.
func TestAuditLine(t *testing.T) {
	t.Parallel()
	rec := &store.Record{ID: "j1", Type: "simulate", Queue: "default"}
	for _, tc := range []struct {
		name  string
		ctx   context.Context
		level slog.Level
		want  string
	}{
		{
			name: "caller", ctx: auth.WithPrincipal(context.Background(), &auth.Principal{ID: "key:k1"}),
			want: `"msg":"audit: job created","principal":"key:k1","tenant":"t1","job_id":"j1","type":"simulate","queue":"default"}` + "\n",
		},
		{
			name: "anonymous", ctx: context.Background(),
			want: `"msg":"audit: job created","principal":"anonymous","tenant":"t1","job_id":"j1","type":"simulate","queue":"default"}` + "\n",
		},
		{name: "level above info", ctx: context.Background(), level: slog.LevelWarn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: tc.level}))
			auditJob(tc.ctx, log, "audit: job created", "t1", rec)
			if tc.want == "" {
				require.Empty(t, out.String())
				return
			}
			require.Contains(t, out.String(), `"level":"INFO",`)
			require.Contains(t, out.String(), tc.want)
		})
	}
}
