package api

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
)

// withEventStream serves `GET /v1/jobs/{id}:watch` as Server-Sent Events
// when the client accepts text/event-stream; everything else (including
// NDJSON watches) goes to the gateway. It calls WatchJob through the same
// in-process client as the gateway, so the interceptor chain applies.
//
// Each event is written as `id: <event id>` and `data: <JobEvent JSON>`;
// browsers' EventSource resumes with Last-Event-ID, which becomes
// WatchJobRequest.after_event_id.
func withEventStream(gw http.Handler, client jobforgev1.JobServiceClient, log *slog.Logger) http.Handler {
	marshal := protojson.MarshalOptions{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/v1/"), ":watch")
		if r.Method != http.MethodGet || !ok || !strings.HasPrefix(name, "jobs/") ||
			!strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
			gw.ServeHTTP(w, r)
			return
		}
		after := r.Header.Get("Last-Event-ID")
		if after == "" {
			after = r.URL.Query().Get("after_event_id")
		}
		if after == "" {
			after = r.URL.Query().Get("afterEventId")
		}
		ctx := r.Context()
		if id := r.Header.Get(requestIDHeader); id != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, requestIDHeader, id)
		}
		stream, err := client.WatchJob(ctx, &jobforgev1.WatchJobRequest{Name: name, AfterEventId: after})
		if err != nil {
			writeStatus(w, err)
			return
		}
		flusher, _ := w.(http.Flusher)
		first := true
		for {
			ev, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				if first {
					writeStatus(w, err)
					return
				}
				st := status.Convert(err)
				b, _ := protojson.Marshal(st.Proto())
				fmt.Fprintf(w, "event: error\ndata: %s\n\n", b)
				return
			}
			if first {
				w.Header().Set("Content-Type", "text/event-stream")
				w.Header().Set("Cache-Control", "no-cache")
				w.Header().Set("X-Accel-Buffering", "no")
				w.WriteHeader(http.StatusOK)
				first = false
			}
			b, err := marshal.Marshal(ev)
			if err != nil {
				log.ErrorContext(ctx, "encode job event", "error", err)
				return
			}
			if _, err := fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", ev.GetId(), strings.ToLower(ev.GetKind().String()), b); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
	})
}

// writeStatus renders a gRPC status error as the gateway would.
func writeStatus(w http.ResponseWriter, err error) {
	writeStatusCode(w, runtime.HTTPStatusFromCode(status.Code(err)), err)
}

func writeStatusCode(w http.ResponseWriter, httpCode int, err error) {
	b, _ := protojson.Marshal(status.Convert(err).Proto())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpCode)
	_, _ = w.Write(b)
}
