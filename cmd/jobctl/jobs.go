package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/client"
)

func newTypesCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "types",
		Short: "List the job types the service accepts, with defaults and an example",
		Args:  exactArgs(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := o.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := jobforgev1.NewJobServiceClient(c.Conn()).ListJobTypes(ctx, &jobforgev1.ListJobTypesRequest{})
			if err != nil {
				return err
			}
			if o.json() {
				return printJSON(o.stdout, resp)
			}
			for i, t := range resp.GetJobTypes() {
				if i > 0 {
					fmt.Fprintln(o.stdout)
				}
				fmt.Fprintf(o.stdout, "%s  (queue %s, timeout %s, %d attempts)\n",
					t.GetName(), t.GetQueue(), t.GetTimeout().AsDuration(), t.GetMaxAttempts())
				if d := t.GetDescription(); d != "" {
					fmt.Fprintf(o.stdout, "  %s\n", d)
				}
				fmt.Fprintf(o.stdout, "  example: jobctl submit %s --payload %s\n", t.GetName(), shellQuote(structJSON(t.GetExamplePayload())))
			}
			return nil
		}),
	}
}

func newSubmitCmd(o *options) *cobra.Command {
	var (
		payload, payloadFile, queue, idemKey string
		maxAttempts                          int32
		timeout, delay                       time.Duration
		labels                               []string
		wait                                 bool
	)
	cmd := &cobra.Command{
		Use:   "submit TYPE",
		Short: "Create a job; with --wait, follow it until it ends",
		Long: `Create a job of TYPE (see jobctl types) and print its name.

With --wait, follow the job like jobctl watch until it ends: the exit code is
1 when it ends FAILED or CANCELLED. Unset options take the job type's
defaults.

On this command --timeout is the job's per-attempt timeout; the request
timeout comes from JOBFORGE_TIMEOUT.`,
		Example: `  jobctl submit primes --payload '{"limit":1000000}' --wait
  jobctl submit report --payload-file report.json --label team=data --delay 10m
  echo '{"outcome":"fail"}' | jobctl submit simulate --payload-file - --max-attempts 1 --wait
  jobctl submit report --payload '{"pages":5}' --idempotency-key order-42 -o json | jq -r .name`,
		Args: exactArgs("TYPE"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			p, err := o.parsePayload(payload, payloadFile)
			if err != nil {
				return err
			}
			lm, err := parseLabels(labels)
			if err != nil {
				return err
			}
			opts := []client.SubmitOption{client.Queue(queue), client.MaxAttempts(maxAttempts), client.Labels(lm), client.IdempotencyKey(idemKey)}
			if cmd.Flags().Changed("timeout") {
				opts = append(opts, client.AttemptTimeout(timeout))
			}
			if cmd.Flags().Changed("delay") {
				opts = append(opts, client.Delay(delay))
			}
			ctx := cmd.Context()
			c, err := o.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			j, err := client.Submit(ctx, c, args[0], p, opts...)
			if err != nil {
				return err
			}
			switch {
			case o.json() && !wait:
				return printJSON(o.stdout, j)
			case !o.json():
				line := fmt.Sprintf("%s created: %s on queue %s, %s", j.GetName(), j.GetType(), j.GetQueue(), j.GetState())
				if j.GetState() == jobforgev1.Job_SCHEDULED {
					line += " for " + when(j.GetScheduleTime(), time.Now())
				}
				fmt.Fprintln(o.stdout, line)
			}
			if !wait {
				return nil
			}
			return o.follow(cmd.Context(), c, j.GetName(), false)
		}),
	}
	f := cmd.Flags()
	f.StringVarP(&payload, "payload", "p", "", "payload, a JSON object (default {})")
	f.StringVarP(&payloadFile, "payload-file", "f", "", "read the payload from a file; - reads stdin")
	f.StringVarP(&queue, "queue", "q", "", "queue to run on (default: the type's)")
	f.Int32Var(&maxAttempts, "max-attempts", 0, "attempts allowed, including the first (default: the type's)")
	f.DurationVar(&timeout, "timeout", 0, "per-attempt timeout of the job, e.g. 30s (default: the type's)")
	f.DurationVar(&delay, "delay", 0, "start the job this long from now, e.g. 10m")
	f.StringArrayVarP(&labels, "label", "l", nil, "label key=value; repeat for more")
	f.StringVar(&idemKey, "idempotency-key", "", "the same key and request return the original job instead of a new one")
	f.BoolVarP(&wait, "wait", "w", false, "follow the job until it ends; exit 1 if it FAILED or was CANCELLED")
	cmd.MarkFlagsMutuallyExclusive("payload", "payload-file")
	return cmd
}

func newGetCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:     "get NAME|ID",
		Short:   "Show a job: state, progress, result, error, attempts, times",
		Example: "  jobctl get jobs/0193e0c4-5b1e-7c2a-9f4e-2d6b8a1c3e5f\n  jobctl get 0193e0c4-5b1e-7c2a-9f4e-2d6b8a1c3e5f -o json | jq .result",
		Args:    exactArgs("NAME|ID"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			name, err := resourceName("jobs", args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := o.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			j, err := c.Get(ctx, name)
			if err != nil {
				return err
			}
			if o.json() {
				return printJSON(o.stdout, j)
			}
			return printJob(o.stdout, j, time.Now())
		}),
	}
}

// printJob writes a job as "field: value" lines.
func printJob(w io.Writer, j *jobforgev1.Job, now time.Time) error {
	tw := newTable(w)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("Name", j.GetName())
	row("Type", j.GetType())
	row("Queue", j.GetQueue())
	row("State", j.GetState().String())
	if p := j.GetProgress(); p != nil {
		row("Progress", strings.TrimSpace(fmt.Sprintf("%d%%  %s", p.GetPercent(), p.GetMessage())))
	}
	row("Attempts", fmt.Sprintf("%d of %d", j.GetAttempts(), j.GetMaxAttempts()))
	if d := j.GetTimeout(); d != nil {
		row("Timeout", d.AsDuration().String()+" per attempt")
	}
	row("Labels", labelsText(j.GetLabels()))
	row("Idempotency key", j.GetIdempotencyKey())
	row("Created", when(j.GetCreateTime(), now))
	if st := j.GetScheduleTime(); st != nil && st.AsTime().After(j.GetCreateTime().AsTime()) {
		row("Scheduled", when(st, now))
	}
	row("Started", when(j.GetStartTime(), now))
	row("Ended", when(j.GetEndTime(), now))
	row("Expires", when(j.GetExpireTime(), now))
	row("Payload", structJSON(j.GetPayload()))
	row("Result", valueJSON(j.GetResult()))
	if e := j.GetError(); e != nil {
		row("Error", jobErrorText(e))
	}
	if cn := j.GetCancellation(); cn != nil {
		row("Cancelled", fmt.Sprintf("by %s at %s: %s", cn.GetRequestedBy(), cn.GetTime().AsTime().Local().Format("15:04:05"), orNone(cn.GetReason())))
	}
	if errs := j.GetAttemptErrors(); len(errs) > 1 {
		fmt.Fprintln(tw, "Attempt errors:\t")
		for _, e := range errs {
			fmt.Fprintf(tw, "  %s\t%s\n", e.GetTime().AsTime().Local().Format("15:04:05"), jobErrorText(e))
		}
	}
	return tw.Flush()
}

func jobErrorText(e *jobforgev1.JobError) string {
	s := fmt.Sprintf("attempt %d: %s", e.GetAttempt(), e.GetMessage())
	if e.GetPermanent() {
		s += " (permanent)"
	}
	return s
}

func newListCmd(o *options) *cobra.Command {
	var (
		filter, pageToken string
		pageSize          int32
		all               bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs, newest first",
		Long: `List the caller's jobs, newest first.

--filter is a conjunction (AND) of: state, type, queue and labels.<key>
compared with = or !=, and create_time compared with <, <=, >, >= against an
RFC 3339 time. Without --all one page is printed and, when more follow, the
token of the next one on stderr.`,
		Example: `  jobctl list
  jobctl list --filter 'state = FAILED AND labels.team = "data"'
  jobctl list --filter 'type = report AND create_time > "2026-01-01T00:00:00Z"' --all -o json`,
		Args: exactArgs(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := o.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			opts := client.ListOptions{Filter: filter, PageSize: pageSize, PageToken: pageToken}
			resp := &jobforgev1.ListJobsResponse{}
			if all {
				for j, err := range c.List(ctx, opts) {
					if err != nil {
						return err
					}
					resp.Jobs = append(resp.Jobs, j)
				}
			} else if resp, err = c.ListPage(ctx, opts); err != nil {
				return err
			}
			token := resp.GetNextPageToken()
			if o.json() {
				return printJSON(o.stdout, resp)
			}
			if err := printJobs(o.stdout, resp.GetJobs(), time.Now()); err != nil {
				return err
			}
			if token != "" {
				fmt.Fprintf(o.stderr, "more jobs follow: --page-token %s (or --all)\n", token)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&filter, "filter", "", "filter expression, e.g. 'state = FAILED AND labels.team = \"data\"'")
	f.Int32Var(&pageSize, "page-size", 0, "jobs per page, at most 1000 (default 50)")
	f.StringVar(&pageToken, "page-token", "", "continue from a previous page")
	f.BoolVar(&all, "all", false, "fetch every page")
	return cmd
}

func printJobs(w io.Writer, jobs []*jobforgev1.Job, now time.Time) error {
	if len(jobs) == 0 {
		_, err := fmt.Fprintln(w, "no jobs")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tTYPE\tQUEUE\tSTATE\tPROGRESS\tATTEMPTS\tAGE\tLABELS")
	for _, j := range jobs {
		progress := "-"
		if p := j.GetProgress(); p != nil {
			progress = fmt.Sprintf("%d%%", p.GetPercent())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", j.GetName(), j.GetType(), j.GetQueue(), j.GetState(),
			progress, j.GetAttempts(), j.GetMaxAttempts(), age(j.GetCreateTime(), now), labelsText(j.GetLabels()))
	}
	return tw.Flush()
}

func newCancelCmd(o *options) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:     "cancel NAME|ID",
		Short:   "Cancel a job that has not finished (a running one is stopped, not retried)",
		Example: `  jobctl cancel jobs/0193e0c4-5b1e-7c2a-9f4e-2d6b8a1c3e5f --reason "customer withdrew"`,
		Args:    exactArgs("NAME|ID"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			name, err := resourceName("jobs", args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := o.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			j, err := c.Cancel(ctx, name, reason)
			if err != nil {
				return err
			}
			if o.json() {
				return printJSON(o.stdout, j)
			}
			fmt.Fprintf(o.stdout, "%s %s\n", j.GetName(), j.GetState())
			return nil
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why; recorded on the job")
	return cmd
}

func newRetryCmd(o *options) *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:     "retry NAME|ID",
		Short:   "Run a FAILED or CANCELLED job again (same id, a fresh attempt budget)",
		Example: `  jobctl retry jobs/0193e0c4-5b1e-7c2a-9f4e-2d6b8a1c3e5f --wait`,
		Args:    exactArgs("NAME|ID"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			name, err := resourceName("jobs", args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := o.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			j, err := c.Retry(ctx, name)
			if err != nil {
				return err
			}
			switch {
			case o.json() && !wait:
				return printJSON(o.stdout, j)
			case !o.json():
				fmt.Fprintf(o.stdout, "%s %s\n", j.GetName(), j.GetState())
			}
			if !wait {
				return nil
			}
			return o.follow(cmd.Context(), c, j.GetName(), false)
		}),
	}
	cmd.Flags().BoolVarP(&wait, "wait", "w", false, "follow the job until it ends; exit 1 if it FAILED or was CANCELLED")
	return cmd
}
