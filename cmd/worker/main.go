// Command worker executes jobs from jobforge's queues. Run as many as the
// load needs; -pools selects the I/O and/or CPU pool.
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
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := config.Load(config.Worker, "worker", args, getenv, stderr)
	if err != nil {
		return err
	}
	return app.RunWorker(ctx, cfg, cfg.Logger(stderr))
}
