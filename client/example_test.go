package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strconv"
	"time"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/client"
)

// The examples run against the development server (`make run`), whose
// address and key they read from JOBFORGE_ADDR and JOBFORGE_TOKEN, and use
// its built-in job types: primes, report and simulate.

// primesPayload and primesResult are the payload and result of the
// built-in primes type, as a service declares them on its side.
type primesPayload struct {
	Limit int64 `json:"limit"`
}

type primesResult struct {
	Count   int64 `json:"count"`
	Largest int64 `json:"largest"`
}

// A service submits a job, waits for it and reads its typed result.
func ExampleSubmit() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, os.Getenv("JOBFORGE_ADDR"),
		client.WithToken(os.Getenv("JOBFORGE_TOKEN")),
		client.WithInsecure()) // the development server; use TLS anywhere else
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	job, err := client.Submit(ctx, c, "primes", primesPayload{Limit: 1000},
		client.MaxAttempts(2), client.Labels(map[string]string{"team": "maths"}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(job.GetType(), job.GetQueue(), job.GetMaxAttempts())

	job, err = c.Wait(ctx, job.GetName())
	if err != nil {
		log.Fatal(err)
	}
	res, err := client.Result[primesResult](job)
	if err != nil {
		log.Fatal(err) // the job failed or was cancelled
	}
	fmt.Printf("%d primes below 1000, the largest %d\n", res.Count, res.Largest)
	// Output:
	// primes cpu 2
	// 168 primes below 1000, the largest 997
}

// Wait reports the job's progress as it goes.
func ExampleClient_Wait() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, os.Getenv("JOBFORGE_ADDR"),
		client.WithToken(os.Getenv("JOBFORGE_TOKEN")), client.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	job, err := client.Submit(ctx, c, "report", map[string]any{"title": "weekly", "pages": 4, "page_millis": 50})
	if err != nil {
		log.Fatal(err)
	}
	var last *jobforgev1.Progress
	job, err = c.Wait(ctx, job.GetName(), client.OnProgress(func(p *jobforgev1.Progress) {
		last = p // a service would update its own status page here
	}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(job.GetState(), last.GetPercent(), last.GetMessage())
	// Output: SUCCEEDED 100 page 4 of 4
}

// Watch follows a job event by event; here, it cancels the job as soon as
// it runs.
func ExampleClient_Watch() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, os.Getenv("JOBFORGE_ADDR"),
		client.WithToken(os.Getenv("JOBFORGE_TOKEN")), client.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	// A job that would run for ten minutes.
	job, err := client.Submit(ctx, c, "simulate", map[string]any{"duration_millis": 600_000})
	if err != nil {
		log.Fatal(err)
	}
	for ev, err := range c.Watch(ctx, job.GetName()) {
		if err != nil {
			log.Fatal(err)
		}
		state := ev.GetState()
		if ev.GetKind() == jobforgev1.JobEvent_SNAPSHOT {
			state = ev.GetJob().GetState() // the job as the watch found it
		}
		switch state {
		case jobforgev1.Job_RUNNING:
			fmt.Println("running; cancelling it")
			if _, err := c.Cancel(ctx, job.GetName(), "changed my mind"); err != nil {
				log.Fatal(err)
			}
		case jobforgev1.Job_CANCELLED:
			fmt.Println("cancelled")
		}
	}
	job, err = c.Get(ctx, job.GetName())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(job.GetState(), job.GetCancellation().GetReason())
	// Output:
	// running; cancelling it
	// cancelled
	// CANCELLED changed my mind
}

// A batch creates many jobs in one call; each item has its own outcome.
func ExampleClient_SubmitBatch() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, os.Getenv("JOBFORGE_ADDR"),
		client.WithToken(os.Getenv("JOBFORGE_TOKEN")), client.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	results, err := c.SubmitBatch(ctx, []client.BatchItem{
		client.Item("primes", primesPayload{Limit: 100}),
		client.Item("primes", primesPayload{Limit: 1}), // below the type's minimum
		client.Item("report", map[string]any{"pages": 2}, client.Queue("low")),
	})
	if err != nil {
		log.Fatal(err) // the call as a whole failed
	}
	for i, r := range results {
		if r.Err != nil {
			fmt.Printf("item %d: %v\n", i, r.Err)
			continue
		}
		fmt.Printf("item %d: %s on queue %s, %s\n", i, r.Job.GetType(), r.Job.GetQueue(), r.Job.GetState())
	}
	// Output:
	// item 0: primes on queue cpu, PENDING
	// item 1: requests[1].job.payload.limit: must be at least 2, got 1 (InvalidArgument)
	// item 2: report on queue low, PENDING
}

// Errors carry their status code, reason and field violations.
func ExampleError() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, os.Getenv("JOBFORGE_ADDR"),
		client.WithToken(os.Getenv("JOBFORGE_TOKEN")), client.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	_, err = client.Submit(ctx, c, "primes", map[string]any{"limit": "lots"})
	var e *client.Error
	if errors.Is(err, client.ErrInvalidArgument) && errors.As(err, &e) {
		fmt.Println(e.Code, e.Reason)
		for _, v := range e.FieldViolations {
			fmt.Printf("%s: %s\n", v.GetField(), v.GetDescription())
		}
	}

	_, err = c.Get(ctx, "0193e0c4-5b1e-7c2a-9f4e-2d6b8a1c3e5f")
	fmt.Println(errors.Is(err, client.ErrNotFound), err)
	// Output:
	// InvalidArgument INVALID_ARGUMENT
	// job.payload.limit: must be an integer, got string
	// true job "jobs/0193e0c4-5b1e-7c2a-9f4e-2d6b8a1c3e5f" not found (NotFound)
}

// List iterates over every page of the jobs a filter selects.
func ExampleClient_List() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, os.Getenv("JOBFORGE_ADDR"),
		client.WithToken(os.Getenv("JOBFORGE_TOKEN")), client.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	run := strconv.FormatInt(time.Now().UnixNano(), 36) // tells this run's jobs apart
	for i := range 3 {
		labels := map[string]string{"run": run, "step": strconv.Itoa(i + 1)}
		if _, err := client.Submit(ctx, c, "simulate", map[string]any{}, client.Labels(labels)); err != nil {
			log.Fatal(err)
		}
	}
	// Two jobs per call: the loop does not notice the pages.
	opts := client.ListOptions{Filter: fmt.Sprintf("labels.run = %q", run), PageSize: 2}
	for job, err := range c.List(ctx, opts) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("step", job.GetLabels()["step"], job.GetType())
	}
	// Output:
	// step 3 simulate
	// step 2 simulate
	// step 1 simulate
}
