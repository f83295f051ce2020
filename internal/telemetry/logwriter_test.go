package telemetry_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/telemetry"
)

// recordingWriter records each write it gets and what was in it.
type recordingWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	fail   error
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	if w.fail != nil {
		return 0, w.fail
	}
	return w.buf.Write(p)
}

func (w *recordingWriter) contents() (string, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String(), w.writes
}

func TestLogWriterLineIsWrittenWhenLogReturns(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			out := &recordingWriter{}
			lw := telemetry.NewLogWriter(out)
			var h slog.Handler = slog.NewJSONHandler(lw, nil)
			if format == "text" {
				h = slog.NewTextHandler(lw, nil)
			}
			log := slog.New(telemetry.LogHandler(lw.Handler(h))).With("process", "api")
			for i := range 3 {
				log.Info("audit: job created", "job_id", i)
				got, writes := out.contents()
				require.Equal(t, i+1, writes, "one write per line when lines do not overlap")
				want := fmt.Sprintf(`"job_id":%d`, i)
				if format == "text" {
					want = fmt.Sprintf("job_id=%d", i)
				}
				require.Contains(t, got, want)
			}
			if format == "json" {
				got, _ := out.contents()
				for line := range bytes.Lines([]byte(got)) {
					var m map[string]any
					require.NoError(t, json.Unmarshal(line, &m))
					require.Equal(t, "api", m["process"], "WithAttrs keeps the writer")
				}
			}
		})
	}
}

// TestLogWriterConcurrentLines logs from many goroutines at once: every
// line is whole, none is lost or doubled, and each is in the output when
// its call returns. (How many writes the lines shared depends on the
// scheduler: it is logged, not asserted; BenchmarkLogLine measures it.)
func TestLogWriterConcurrentLines(t *testing.T) {
	t.Parallel()
	const goroutines, perGoroutine = 16, 50
	out := &recordingWriter{}
	lw := telemetry.NewLogWriter(out)
	log := slog.New(lw.Handler(slog.NewJSONHandler(lw, nil)))
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perGoroutine {
				id := fmt.Sprintf("g%d-%d", g, i)
				log.Info("line", "id", id)
				got, _ := out.contents()
				if !bytes.Contains([]byte(got), []byte(`"id":"`+id+`"`)) {
					t.Errorf("line %s not in the output when Info returned", id)
					return
				}
			}
		})
	}
	wg.Wait()
	got, writes := out.contents()
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader([]byte(got)))
	for sc.Scan() {
		var m struct{ ID string }
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "a whole JSON line: %q", sc.Text())
		seen[m.ID]++
	}
	require.Len(t, seen, goroutines*perGoroutine)
	for id, n := range seen {
		require.Equal(t, 1, n, "line %s", id)
	}
	t.Logf("%d lines in %d writes", goroutines*perGoroutine, writes)
}

func TestLogWriterReportsWriteError(t *testing.T) {
	t.Parallel()
	out := &recordingWriter{fail: errors.New("disk full")}
	lw := telemetry.NewLogWriter(out)
	h := lw.Handler(slog.NewJSONHandler(lw, nil))
	err := h.Handle(context.Background(), slog.NewRecord(time.Time{}, slog.LevelInfo, "x", 0))
	require.ErrorContains(t, err, "disk full")
	out.mu.Lock()
	out.fail = nil
	out.mu.Unlock()
	require.NoError(t, h.Handle(context.Background(), slog.NewRecord(time.Time{}, slog.LevelInfo, "y", 0)))
	got, _ := out.contents()
	require.Contains(t, got, `"msg":"y"`)
	require.NotContains(t, got, `"msg":"x"`, "a failed write is not retried")
}

// BenchmarkLogLine logs an audit-like line from many goroutines to a file,
// with each line written on its own (as slog does) and through a
// LogWriter.
func BenchmarkLogLine(b *testing.B) {
	for _, tt := range []struct {
		name string
		new  func(*os.File) *slog.Logger
	}{
		{"own write", func(f *os.File) *slog.Logger { return slog.New(slog.NewJSONHandler(f, nil)) }},
		{"LogWriter", func(f *os.File) *slog.Logger {
			lw := telemetry.NewLogWriter(f)
			return slog.New(lw.Handler(slog.NewJSONHandler(lw, nil)))
		}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "log"))
			require.NoError(b, err)
			b.Cleanup(func() { _ = f.Close() })
			log := tt.new(f)
			b.SetParallelism(32)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					log.LogAttrs(context.Background(), slog.LevelInfo, "audit: job created",
						slog.String("principal", "key:bench"), slog.String("tenant", "bench"),
						slog.String("job_id", "01a23da5-d551-76aa-9c1e-5b0f3d2e1c4a"),
						slog.String("type", "simulate"), slog.String("queue", "default"))
				}
			})
		})
	}
}
