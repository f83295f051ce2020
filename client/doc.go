// Package client is the Go client of the jobforge API: submit background
// jobs from a Go service, follow them, wait for their results.
//
// # Connecting
//
// [Dial] returns a [Client], safe for concurrent use; make one per process
// and Close it on the way out. The token (an API key or a JWT) decides the
// tenant; the connection uses TLS unless [WithInsecure] says otherwise:
//
//	c, err := client.Dial(ctx, "jobs.example.com:443", client.WithToken(os.Getenv("JOBFORGE_TOKEN")))
//	if err != nil {
//		return err
//	}
//	defer c.Close()
//
// # Submitting and waiting
//
// [Submit] creates a job from a Go value, encoded as JSON; options set the
// queue, attempts, timeout, schedule, labels and an idempotency key.
// [Client.Wait] follows the job until it ends, and [Result] decodes what it
// returned:
//
//	type resizePayload struct {
//		URL   string `json:"url"`
//		Width int    `json:"width"`
//	}
//	type resizeResult struct {
//		Location string `json:"location"`
//	}
//
//	job, err := client.Submit(ctx, c, "resize", resizePayload{URL: u, Width: 640},
//		client.IdempotencyKey("resize-"+imageID), client.MaxAttempts(5))
//	if err != nil {
//		return err
//	}
//	job, err = c.Wait(ctx, job.GetName())
//	if err != nil {
//		return err
//	}
//	res, err := client.Result[resizeResult](job) // ErrJobFailed, ErrJobCancelled…
//
// A service that does not wait keeps the job's name (jobs/{id}) and later
// calls [Client.Get], [Client.Cancel] or [Client.Retry] with it (or with the
// bare id). [Client.SubmitBatch] creates up to 1000 jobs in one call, with a
// result per item; [Client.List] iterates over the jobs a filter selects.
//
// # Watching
//
// [Client.Watch] is a range-over-func iterator of a job's events: its
// state changes and progress, until it ends. A stream that breaks (a
// restart of the API, a lost connection) is resumed after the last event
// seen, without gaps or repeats; [OnResume] reports it.
//
// # Errors
//
// Errors the server returns are [*Error] values, carrying the status code,
// the message, the machine-readable reason, the field violations of an
// invalid request and the delay the server asks before a retry. Each matches
// a sentinel of its code with [errors.Is]:
//
//	_, err := client.Submit(ctx, c, "resize", p)
//	var e *client.Error
//	switch {
//	case errors.Is(err, client.ErrInvalidArgument) && errors.As(err, &e):
//		for _, v := range e.FieldViolations {
//			log.Printf("%s: %s", v.GetField(), v.GetDescription())
//		}
//	case errors.Is(err, client.ErrUnavailable), errors.Is(err, client.ErrResourceExhausted):
//		// retry later, with the same idempotency key
//	}
//
// # Types
//
// Jobs and events are the API's own messages, [jobforgev1.Job] and
// [jobforgev1.JobEvent] from github.com/jobforge/jobforge/api/gen/jobforge/v1,
// the stable v1 API: read them with their getters (job.GetState(),
// ev.GetProgress().GetPercent()), which are safe on nil. The queue and
// schedule services are reached through [Client.Conn].
package client
