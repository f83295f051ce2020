// Package worker runs jobforge job types: a worker process that takes jobs
// from Redis, runs their handlers and records progress and outcomes, with
// every guarantee of jobforge's own worker (leases and crash recovery in
// seconds, attempts that a crash does not consume, cancellation, graceful
// shutdown, metrics and traces).
//
// Job types live in your module: define them with package jobs, then hand
// them to Run (or Main) from your own main package. When the worker starts,
// and on every heartbeat, it publishes the types it serves (name,
// description, defaults, payload JSON Schema, example) to Redis; the stock
// jobforge API validates submissions against that catalogue, so it never
// needs your code or a rebuild:
//
//	func main() { worker.Main(wordcount.Type) }
//
// `<worker> publish` publishes the catalogue and exits, without running
// anything: the API then accepts the types' jobs, which wait for a worker
// (useful before a rollout, or to fill queues while workers are stopped).
//
// A worker built this way is configured exactly like cmd/worker: the same
// flags and environment variables (REDIS_URL, -queues, -concurrency,
// -shutdown-timeout, …; see docs/configuration.md). A type's default queue
// must be one the worker reads: `-queues default=1,thumbnails=2`.
package worker

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/jobforge/jobforge/internal/app"
	"github.com/jobforge/jobforge/internal/config"
	"github.com/jobforge/jobforge/jobs"
)

// Run runs a worker for types until ctx is done, then shuts down
// gracefully: it stops fetching, lets running jobs finish within the
// shutdown timeout and puts the rest back in their queues without using up
// an attempt. args and getenv are the process's flags and environment
// (os.Args[1:], os.Getenv); logs go to stderr. Two types with one name, or a
// type whose default queue the worker does not read, are an error before
// anything starts.
func Run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, types ...*jobs.Type) error {
	if len(types) == 0 {
		return errors.New("worker: no job types to run")
	}
	name := "worker"
	if len(os.Args) > 0 {
		name = filepath.Base(os.Args[0])
	}
	publish := len(args) > 0 && args[0] == "publish"
	if publish {
		args, name = args[1:], name+" publish"
	}
	cfg, err := config.Load(config.Worker, name, args, getenv, stderr)
	if err != nil {
		return err
	}
	if publish {
		return app.PublishTypes(ctx, cfg, cfg.Logger(stderr), types)
	}
	return app.RunWorker(ctx, cfg, cfg.Logger(stderr), types)
}

// Main is a whole main function: it runs a worker for types with the
// process's flags and environment until SIGINT or SIGTERM, and exits with
// status 1 on error.
func Main(types ...*jobs.Type) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, os.Args[1:], os.Getenv, os.Stderr, types...)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
