// Command jobctl is the command-line client of jobforge: it submits, lists,
// watches, cancels and retries jobs, and shows queues, workers and
// schedules. It speaks only the public gRPC API.
//
//	jobctl submit report --payload '{"pages":20,"page_millis":200}' --wait
//	jobctl list --filter 'state = FAILED'
//	jobctl watch jobs/0193e0c4-5b1e-7c2a-9f4e-2d6b8a1c3e5f
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err))
}
