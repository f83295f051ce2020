package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/jobforge/jobforge/internal/redistest"
	"github.com/jobforge/jobforge/internal/telemetry"
)

func TestMain(m *testing.M) { redistest.Main(m) }

func TestTracingEnabledByStandardVariables(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"nothing set", nil, false},
		{"otlp endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, true},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, true},
		{"exporter named", map[string]string{"OTEL_TRACES_EXPORTER": "console"}, true},
		{"exporter none", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, false},
		{"sdk disabled", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, telemetry.Enabled(func(k string) string { return tt.env[k] }))
		})
	}
}

func TestTracingOffWhenUnconfigured(t *testing.T) {
	t.Parallel()
	tr, err := telemetry.NewTracing(context.Background(), func(string) string { return "" }, "test")
	require.NoError(t, err)
	_, span := tr.Provider.Tracer("t").Start(context.Background(), "op")
	require.False(t, span.IsRecording(), "no spans are recorded without OTEL_* configuration")
	span.End()
	require.NoError(t, tr.Shutdown(context.Background()))
}

func TestLogHandlerAddsTraceIDs(t *testing.T) {
	t.Parallel()
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	traced := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled,
	}))
	tests := []struct {
		name      string
		ctx       context.Context
		log       func(*slog.Logger) *slog.Logger
		wantTrace any
	}{
		{"traced context", traced, func(l *slog.Logger) *slog.Logger { return l }, "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"after With", traced, func(l *slog.Logger) *slog.Logger { return l.With("job_id", "j1") }, "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"untraced context", context.Background(), func(l *slog.Logger) *slog.Logger { return l }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			log := tt.log(slog.New(telemetry.LogHandler(slog.NewJSONHandler(&buf, nil))))
			log.InfoContext(tt.ctx, "hello")
			var m map[string]any
			require.NoError(t, json.Unmarshal(buf.Bytes(), &m))
			require.Equal(t, tt.wantTrace, m["trace_id"])
			if tt.wantTrace != nil {
				require.Equal(t, "00f067aa0ba902b7", m["span_id"])
			}
		})
	}
}

func TestAdminServer(t *testing.T) {
	t.Parallel()
	var redisDown atomic.Bool
	admin, err := telemetry.NewAdmin(telemetry.AdminOptions{
		Addr:     "127.0.0.1:0",
		Gatherer: telemetry.NewRegistry(),
		Ready: func(context.Context) error {
			if redisDown.Load() {
				return errors.New("connection refused")
			}
			return nil
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- admin.Run(ctx, release) }()
	base := "http://" + admin.Addr()
	code := func(path string) int {
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode
	}

	tests := []struct {
		path string
		want int
	}{
		{"/healthz", 200},
		{"/readyz", 200},
		{"/metrics", 200},
		{"/debug/pprof/", 200},
		{"/debug/pprof/cmdline", 200},
		{"/nope", 404},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, code(tt.path), tt.path)
	}

	redisDown.Store(true)
	require.Equal(t, http.StatusServiceUnavailable, code("/readyz"))
	require.Equal(t, http.StatusOK, code("/healthz"), "liveness does not depend on Redis")
	redisDown.Store(false)
	require.Equal(t, http.StatusOK, code("/readyz"))

	// Shutdown: readiness off at once; the port stays open (metrics can be
	// scraped) until released.
	cancel()
	redistest.Eventually(t, 5*time.Second, func() bool { return code("/readyz") == http.StatusServiceUnavailable }, "readiness still on")
	require.Equal(t, http.StatusOK, code("/metrics"))
	close(release)
	require.NoError(t, <-done)
	_, err = http.Get(base + "/healthz")
	require.Error(t, err, "admin port still open after release")
}
