// Command jobforge-dev is the whole system in one process, for development
// (`make run`): the API, an in-process worker running the built-in job
// types and, when REDIS_URL is unset, an embedded in-memory store that is
// lost when the process exits. It takes the API's flags and environment;
// -dev is implied.
//
// Production runs cmd/api and cmd/worker (or your own worker) as separate
// processes.
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
	"github.com/jobforge/jobforge/jobs/builtin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "jobforge-dev:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Load(config.API, "jobforge-dev", append([]string{"-dev"}, args...), getenv, stderr)
	if err != nil {
		return err
	}
	return app.RunAPI(ctx, cfg, cfg.Logger(stderr), stdout, builtin.Types())
}
