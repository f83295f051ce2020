package api

import (
	"context"
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
//
// The request's headers reach the call as the gateway would forward them
// (incomingHeader: credentials, request id), plus the metadata the gateway
// adds (trace context), so SSE watches authenticate like any REST call.
func withEventStream(gw http.Handler, client jobforgev1.JobServiceClient, annotate func(context.Context, *http.Request) metadata.MD, log *slog.Logger) http.Handler {
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
		ctx := metadata.NewOutgoingContext(r.Context(), forwardedMetadata(r, annotate))
		stream, err := client.WatchJob(ctx, &jobforgev1.WatchJobRequest{Name: name, AfterEventId: after})
		if err != nil {
			writeStatus(w, err)
			return
		}
		rc := http.NewResponseController(w)
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
				b = compactJSON(b)
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
			b = compactJSON(b)
			if err != nil {
				log.ErrorContext(ctx, "encode job event", "error", err)
				return
			}
			if _, err := fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", ev.GetId(), strings.ToLower(ev.GetKind().String()), b); err != nil {
				return
			}
			_ = rc.Flush() // a client that went away fails the next write
		}
	})
}

// forwardedMetadata is the outgoing metadata of a REST call made outside
// the gateway: the headers incomingHeader lets through, and annotate's.
func forwardedMetadata(r *http.Request, annotate func(context.Context, *http.Request) metadata.MD) metadata.MD {
	md := metadata.MD{}
	for key, vals := range r.Header {
		if name, ok := incomingHeader(key); ok {
			md.Append(name, vals...)
		}
	}
	if annotate != nil {
		md = metadata.Join(md, annotate(r.Context(), r))
	}
	return md
}

// writeStatus renders a gRPC status error as the gateway's error handler
// would, Retry-After included.
func writeStatus(w http.ResponseWriter, err error) {
	st := withErrorInfo(status.Convert(err))
	setRetryAfter(w, st)
	writeStatusCode(w, runtime.HTTPStatusFromCode(st.Code()), st.Err())
}

func writeStatusCode(w http.ResponseWriter, httpCode int, err error) {
	b, _ := protojson.Marshal(status.Convert(err).Proto())
	b = compactJSON(b)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpCode)
	_, _ = w.Write(b)
}
