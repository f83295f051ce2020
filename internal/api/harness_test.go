package api_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/jobforge/jobforge/internal/api"
	"github.com/jobforge/jobforge/internal/catalog"
	"github.com/jobforge/jobforge/internal/queue"
	"github.com/jobforge/jobforge/jobs"
	"github.com/jobforge/jobforge/jobs/builtin"
)

var testQueues = []string{"critical", "default", "cpu"}

// stack is what a test API server is built from: a Redis connection, the
// built-in job types, a store and the JobService on them.
type stack struct {
	rdb   queue.Client
	reg   *jobs.Registry
	store *queue.Store
	svc   *api.Service
	log   *slog.Logger
}

// newStack connects to redisURL (closed when the test ends) and builds the
// JobService on it.
func newStack(t testing.TB, redisURL string, storeOpts ...queue.StoreOptions) *stack {
	t.Helper()
	s := &stack{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	var err error
	s.rdb, err = queue.Connect(context.Background(), redisURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.rdb.Close() })
	s.reg, err = jobs.NewRegistry(builtin.Types()...)
	require.NoError(t, err)
	s.store = queue.NewStore(s.rdb, s.log, storeOpts...)
	s.svc = api.NewService(s.store, publishedCatalog(t, s.rdb, s.reg), testQueues, []byte("test-key"), s.log)
	return s
}

// publishedCatalog publishes the types of reg to Redis, as a worker does
// when it starts, and returns the API's view of the catalogue there.
func publishedCatalog(t testing.TB, rdb queue.Client, reg *jobs.Registry) api.Catalog {
	t.Helper()
	var entries []catalog.Entry
	for _, typ := range reg.Types() {
		entries = append(entries, catalog.EntryOf(typ))
	}
	require.NoError(t, queue.PublishCatalog(context.Background(), rdb, entries))
	return catalog.NewCache(queue.CatalogSource(rdb), catalog.CacheOptions{})
}

// serve runs an API server on loopback ports until the test ends; opts
// add to the defaults (listen addresses, readiness, logger, timeouts).
func (s *stack) serve(t testing.TB, opts api.Options) *api.Server {
	t.Helper()
	opts.GRPCAddr, opts.HTTPAddr, opts.ShutdownTimeout = "127.0.0.1:0", "127.0.0.1:0", 5*time.Second
	opts.Ready, opts.Logger = s.store.Ping, s.log
	srv, err := api.NewServer(opts, s.svc)
	require.NoError(t, err)
	contractServers.register(t, srv.HTTPAddr()) // its REST responses are checked against the OpenAPI document
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	return srv
}

// startWorker runs a worker with fast polling (io pool: critical, default;
// cpu pool: cpu) on the stack's database; adjust may change the options.
// Started after serve, it stops before the server does.
func (s *stack) startWorker(t *testing.T, adjust func(*queue.WorkerOptions)) {
	t.Helper()
	opts := queue.WorkerOptions{
		Pools: []queue.Pool{
			{Name: "io", Queues: map[string]int{"critical": 2, "default": 1}, Concurrency: 4},
			{Name: "cpu", Queues: map[string]int{"cpu": 1}, Concurrency: 1},
		},
		PollInterval: 5 * time.Millisecond, DelayedCheckInterval: 100 * time.Millisecond,
		ShutdownTimeout: 2 * time.Second, Retention: time.Hour, Logger: s.log,
	}
	if adjust != nil {
		adjust(&opts)
	}
	w := queue.NewWorker(s.rdb, s.reg, opts)
	require.NoError(t, w.Start())
	t.Cleanup(w.Shutdown)
}

// dial returns a plaintext gRPC connection that is closed when the test ends.
func dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}
