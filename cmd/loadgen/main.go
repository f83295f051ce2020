// Command loadgen is jobforge's benchmark suite. It starts a real
// redis-server, the real api and worker binaries and, in the same run, raw
// asynq baselines (a client and a server inside this program), measures
// both side by side, and prints one table with absolute figures and ratios;
// it also writes the table as markdown and JSON and draws a PNG chart.
//
//	make bench                       # everything, ~3-4 minutes on 2 cores
//	make bench BENCH=B1,B4           # some benchmarks
//	bin/loadgen -h                   # every knob
//
// See docs/benchmarks.md for what each benchmark measures and the latest
// figures.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}
