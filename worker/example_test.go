package worker_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/jobforge/jobforge/client"
	"github.com/jobforge/jobforge/jobs"
	"github.com/jobforge/jobforge/worker"
)

// A job type of your own: its payload, its result and its handler.
type GreetPayload struct {
	Name string `json:"name" jsonschema:"required,minLength=1,description=Who to greet"`
}

type GreetResult struct {
	Greeting string `json:"greeting"`
}

var greet = jobs.Define(jobs.Spec[GreetPayload, GreetResult]{
	Name:        "greet",
	Description: "Greets someone.",
	Queue:       "default",
	Timeout:     time.Minute,
	MaxAttempts: 3,
	Example:     GreetPayload{Name: "world"},
	Handle: func(ctx context.Context, job *jobs.Job, p GreetPayload) (GreetResult, error) {
		return GreetResult{Greeting: "hello, " + p.Name}, nil
	},
})

// A worker of your own runs your job type next to the stock API: the API
// learns the type from the catalogue the worker publishes, validates
// payloads against its schema, and a service submits jobs and reads typed
// results through package client. In a real program the whole main
// function is worker.Main(greet).
func ExampleRun() {
	ctx, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()

	// `publish` puts the type in the catalogue and exits: the API accepts
	// greet jobs from now on, even before a worker runs.
	if err := worker.Run(ctx, []string{"publish"}, os.Getenv, io.Discard, greet); err != nil {
		log.Fatal(err)
	}

	// The worker itself (REDIS_URL from the environment), until ctx ends.
	wctx, stopWorker := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- worker.Run(wctx, []string{"-pools", "io", "-admin-addr", "127.0.0.1:0"}, os.Getenv, io.Discard, greet)
	}()

	// A service submits a job and waits for its typed result.
	c, err := client.Dial(ctx, os.Getenv("JOBFORGE_ADDR"), client.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	job, err := client.Submit(ctx, c, "greet", GreetPayload{Name: "world"})
	if err != nil {
		log.Fatal(err)
	}
	job, err = c.Wait(ctx, job.GetName())
	if err != nil {
		log.Fatal(err)
	}
	res, err := client.Result[GreetResult](job)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Greeting)

	// A payload that does not match the schema is refused by the API.
	_, err = client.Submit(ctx, c, "greet", map[string]any{"name": ""})
	fmt.Println(err)

	stopWorker()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	// Output:
	// hello, world
	// job.payload.name: must not be empty (InvalidArgument)
}
