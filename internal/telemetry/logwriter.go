package telemetry

import (
	"context"
	"io"
	"log/slog"
	"sync"
)

// LogWriter gathers the lines that goroutines log at the same moment into
// one write to the output, and still returns from logging only once the
// line is written: a line logged before a request answers (an audit line)
// is in the output when the answer leaves, as if each line had its own
// write.
//
// slog's handlers format a line outside their lock but write it under the
// lock, so with one write per line concurrent requests queue behind each
// other's system call (under create load, the audit lines' writes were a
// twentieth of the API's CPU). Here the handler's write only appends to a
// buffer; the handler returned by [LogWriter.Handler] then waits, outside
// slog's lock, until the buffer up to its line is written. The first
// goroutine to wait writes everything buffered so far, in one call, while
// the others wait for it; lines appended meanwhile go in the next write.
type LogWriter struct {
	out io.Writer

	mu       sync.Mutex
	written  sync.Cond // signalled after each write to out
	buf      []byte    // appended, not yet written
	spare    []byte    // the other buffer, reused
	appended int64     // bytes appended since the start
	flushed  int64     // of which written (or failed)
	writing  bool      // a goroutine is writing buf's predecessor
}

// NewLogWriter returns a LogWriter that writes to out.
func NewLogWriter(out io.Writer) *LogWriter {
	w := &LogWriter{out: out}
	w.written.L = &w.mu
	return w
}

// Write appends p to the buffer; it never writes to the output itself.
// What is written here reaches the output at the next Flush, which the
// handlers of [LogWriter.Handler] call after every line.
func (w *LogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf = append(w.buf, p...)
	w.appended += int64(len(p))
	w.mu.Unlock()
	return len(p), nil
}

// Flush returns once everything appended before the call is written to
// the output, writing it itself unless another goroutine is writing.
func (w *LogWriter) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var err error
	for upTo := w.appended; w.flushed < upTo; {
		if w.writing {
			w.written.Wait()
			continue
		}
		w.writing = true
		buf, end := w.buf, w.appended
		w.buf, w.spare = w.spare[:0], nil
		w.mu.Unlock()
		_, err = w.out.Write(buf)
		w.mu.Lock()
		if cap(buf) <= maxSpare {
			w.spare = buf[:0]
		}
		w.flushed, w.writing = end, false
		w.written.Broadcast()
	}
	return err
}

// maxSpare caps the buffer kept for reuse, so that one burst of long lines
// does not hold its memory for ever.
const maxSpare = 64 << 10

// Handler wraps h, a handler that writes to w, so that each line is
// written (Flush) before Handle returns.
func (w *LogWriter) Handler(h slog.Handler) slog.Handler { return flushHandler{h, w} }

type flushHandler struct {
	slog.Handler
	w *LogWriter
}

func (h flushHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if ferr := h.w.Flush(); err == nil {
		err = ferr
	}
	return err
}

func (h flushHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return flushHandler{h.Handler.WithAttrs(as), h.w}
}

func (h flushHandler) WithGroup(name string) slog.Handler {
	return flushHandler{h.Handler.WithGroup(name), h.w}
}
