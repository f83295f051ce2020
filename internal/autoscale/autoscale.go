// Package autoscale serves what a worker autoscaler needs to size a worker
// fleet: for the queues a fleet serves, the jobs running now plus the jobs
// waiting in queues that are not paused, read from Redis at request time.
//
// KEDA reads it with its built-in metrics-api scaler (deploy/k8s): one
// trigger per worker Deployment, whose targetValue is the slots of one pod,
// asks for ceil(runnable / slots) pods. Because running jobs count, the
// answer never drops below the pods the running jobs occupy, so scale-in
// only takes capacity that is idle; because a paused queue's pending jobs do
// not count, pausing a queue never adds a pod.
//
// It listens on its own address so that a network policy can open it to
// the autoscaler alone (the admin port carries pprof).
package autoscale

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jobforge/jobforge/internal/queue"
)

// Path is where the backlog is served: GET Path?queues=a,b,c.
const Path = "/backlog"

// readTimeout bounds one read of Redis.
const readTimeout = 2 * time.Second

// Reader reads the load of the named queues.
type Reader func(ctx context.Context, queues []string) ([]queue.QueueLoad, error)

// Response is the JSON document served at Path. KEDA's valueLocation is
// "runnable".
type Response struct {
	// Runnable is the sum of the queues' Runnable.
	Runnable int64 `json:"runnable"`
	// Queues are the queues asked for, in the order asked.
	Queues []Queue `json:"queues"`
}

// Queue is one queue's share.
type Queue struct {
	Name    string `json:"name"`
	Pending int64  `json:"pending"`
	Running int64  `json:"running"`
	Paused  bool   `json:"paused"`
	// Runnable is Running plus, unless the queue is paused, Pending.
	Runnable int64 `json:"runnable"`
}

// Handler serves Path. known are the configured queues: asking for another
// one is an error (400), so that a typo in a trigger fails loudly instead
// of reading an empty queue forever.
func Handler(read Reader, known []string, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Path, func(w http.ResponseWriter, r *http.Request) {
		names, err := parseQueues(r.URL.Query()["queues"], known)
		if err != nil {
			http.Error(w, err.Error()+"\n", http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), readTimeout)
		defer cancel()
		loads, err := read(ctx, names)
		if err != nil {
			log.WarnContext(ctx, "read queue backlog", "error", err)
			http.Error(w, "queue backlog unavailable\n", http.StatusServiceUnavailable)
			return
		}
		resp := Response{Queues: make([]Queue, 0, len(loads))}
		for _, l := range loads {
			resp.Runnable += l.Runnable()
			resp.Queues = append(resp.Queues, Queue{
				Name: l.Queue, Pending: l.Pending, Running: l.Running, Paused: l.Paused, Runnable: l.Runnable(),
			})
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(resp)
	})
	return mux
}

func parseQueues(params, known []string) ([]string, error) {
	if len(params) != 1 {
		return nil, errors.New("want one queues parameter: ?queues=a,b,c")
	}
	var names []string
	for _, q := range strings.Split(params[0], ",") {
		q = strings.TrimSpace(q)
		switch {
		case q == "":
			continue
		case !slices.Contains(known, q):
			return nil, fmt.Errorf("unknown queue %q (configured: %s)", q, strings.Join(known, ", "))
		case slices.Contains(names, q):
			return nil, fmt.Errorf("queue %q listed twice", q)
		}
		names = append(names, q)
	}
	if len(names) == 0 {
		return nil, errors.New("no queue named: ?queues=a,b,c")
	}
	return names, nil
}

// Server serves Handler on its own listener.
type Server struct {
	lis net.Listener
	srv *http.Server
}

// NewServer binds addr.
func NewServer(addr string, read Reader, known []string, log *slog.Logger) (*Server, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen autoscaling: %w", err)
	}
	return &Server{lis: lis, srv: &http.Server{
		Handler:           Handler(read, known, log),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}, nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// Run serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve autoscaling: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		_ = s.srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve autoscaling: %w", err)
	}
	return nil
}

// Close releases the listener of a server that never ran.
func (s *Server) Close() error { return s.lis.Close() }
