// Command wordcount-submit is a Go service's side of the example: it
// submits a wordcount job through jobforge's client package, waits for it
// and prints the typed result.
//
//	wordcount-submit -addr localhost:8081 -token "$JF_KEY" "some text to count"
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"example.com/wordcount"

	"github.com/jobforge/jobforge/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "wordcount-submit:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("wordcount-submit", flag.ContinueOnError)
	addr := fs.String("addr", "localhost:8081", "jobforge gRPC address")
	token := fs.String("token", getenv("JF_KEY"), "API key or JWT (env JF_KEY)")
	plaintext := fs.Bool("plaintext", true, "connect without TLS (a development server)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts := []client.Option{client.WithToken(*token)}
	if *plaintext {
		opts = append(opts, client.WithInsecure())
	}
	c, err := client.Dial(ctx, *addr, opts...)
	if err != nil {
		return err
	}
	defer c.Close()

	job, err := client.Submit(ctx, c, "wordcount", wordcount.Payload{Text: strings.Join(fs.Args(), " ")})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	done, err := c.Wait(ctx, job.GetName())
	if err != nil {
		return err
	}
	res, err := client.Result[wordcount.Result](done)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d words, longest %q\n", done.GetName(), res.Words, res.Longest)
	return nil
}
