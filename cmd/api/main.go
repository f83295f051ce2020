// Command api serves jobforge's JobService over gRPC and REST. It has no
// job code: it validates jobs against the catalogue of job types that
// workers publish, so a new job type needs a new worker, never a new API.
//
// With -dev and no REDIS_URL it runs an embedded in-memory store (and a
// dev API key), but no worker: `make run` runs cmd/jobforge-dev, which
// adds an in-process worker. `api keygen` creates API keys.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/jobforge/jobforge/internal/app"
	"github.com/jobforge/jobforge/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "api:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "keygen" {
		return app.KeyGen(args[1:], stdout, stderr)
	}
	cfg, err := config.Load(config.API, "api", args, getenv, stderr)
	if err != nil {
		return err
	}
	return app.RunAPI(ctx, cfg, cfg.Logger(stderr), stdout, nil)
}
