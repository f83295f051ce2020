package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
)

func newQueuesCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queues",
		Short: "List the queues: depth per state, latency, paused (needs the admin scope)",
		Long: `List every configured queue with its jobs per state, the age of its oldest
pending job (latency), whether it is paused, and today's (UTC) processed and
failed counts. The pause and resume subcommands stop and restart a queue.`,
		Args: exactArgs(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := o.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := queues(c).ListQueues(ctx, &jobforgev1.ListQueuesRequest{})
			if err != nil {
				return err
			}
			if o.json() {
				return printJSON(o.stdout, resp)
			}
			tw := newTable(o.stdout)
			fmt.Fprintln(tw, "QUEUE\tPENDING\tACTIVE\tSCHEDULED\tRETRY\tARCHIVED\tLATENCY\tPAUSED\tPROCESSED TODAY\tFAILED TODAY")
			for _, q := range resp.GetQueues() {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%t\t%d\t%d\n", strings.TrimPrefix(q.GetName(), "queues/"),
					q.GetPending(), q.GetActive(), q.GetScheduled(), q.GetRetry(), q.GetArchived(),
					q.GetLatency().AsDuration().Round(time.Millisecond), q.GetPaused(), q.GetProcessedToday(), q.GetFailedToday())
			}
			return tw.Flush()
		}),
	}
	cmd.AddCommand(newQueueStateCmd(o, "pause"), newQueueStateCmd(o, "resume"))
	return cmd
}

// newQueueStateCmd is `queues pause Q` or `queues resume Q`.
func newQueueStateCmd(o *options, verb string) *cobra.Command {
	short := "Stop workers from starting jobs of queue Q (running jobs finish; new jobs are accepted)"
	if verb == "resume" {
		short = "Let workers start jobs of queue Q again"
	}
	return &cobra.Command{
		Use:     verb + " Q",
		Short:   short,
		Example: fmt.Sprintf("  jobctl queues %s default", verb),
		Args:    exactArgs("Q"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			name, err := resourceName("queues", args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := o.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			var q *jobforgev1.Queue
			if verb == "pause" {
				q, err = queues(c).PauseQueue(ctx, &jobforgev1.PauseQueueRequest{Name: name})
			} else {
				q, err = queues(c).ResumeQueue(ctx, &jobforgev1.ResumeQueueRequest{Name: name})
			}
			if err != nil {
				return err
			}
			if o.json() {
				return printJSON(o.stdout, q)
			}
			state := "running"
			if q.GetPaused() {
				state = "paused"
			}
			fmt.Fprintf(o.stdout, "%s %s (%d pending)\n", q.GetName(), state, q.GetPending())
			return nil
		}),
	}
}

func newWorkersCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "workers",
		Short: "List the live worker pools: host, queues, slots, busy slots (needs the admin scope)",
		Args:  exactArgs(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := o.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := queues(c).ListWorkers(ctx, &jobforgev1.ListWorkersRequest{})
			if err != nil {
				return err
			}
			if o.json() {
				return printJSON(o.stdout, resp)
			}
			if len(resp.GetWorkers()) == 0 {
				fmt.Fprintln(o.stdout, "no live workers")
				return nil
			}
			now := time.Now()
			tw := newTable(o.stdout)
			fmt.Fprintln(tw, "HOST\tPID\tQUEUES\tBUSY\tSLOTS\tSTATUS\tUP")
			for _, w := range resp.GetWorkers() {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\t%s\n", w.GetHost(), w.GetPid(), weights(w.GetQueues()),
					w.GetBusy(), w.GetConcurrency(), w.GetStatus(), age(w.GetStartTime(), now))
			}
			return tw.Flush()
		}),
	}
}

// weights renders queue weights as "critical=6,default=3", by name.
func weights(m map[string]int32) string {
	names := make([]string, 0, len(m))
	for q := range m {
		names = append(names, q)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, q := range names {
		parts[i] = fmt.Sprintf("%s=%d", q, m[q])
	}
	return strings.Join(parts, ",")
}

func newSchedulesCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedules",
		Short: "List, create and delete periodic jobs",
		Long: `A schedule creates one job from a template at every time matching a cron spec
in a time zone, however many workers run.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newScheduleListCmd(o), newScheduleCreateCmd(o), newScheduleDeleteCmd(o))
	return cmd
}

func newScheduleListCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the schedules",
		Args:  exactArgs(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := o.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := schedules(c).ListSchedules(ctx, &jobforgev1.ListSchedulesRequest{})
			if err != nil {
				return err
			}
			if o.json() {
				return printJSON(o.stdout, resp)
			}
			if len(resp.GetSchedules()) == 0 {
				fmt.Fprintln(o.stdout, "no schedules")
				return nil
			}
			now := time.Now()
			tw := newTable(o.stdout)
			fmt.Fprintln(tw, "NAME\tCRON\tTIME ZONE\tTYPE\tNEXT RUN\tDESCRIPTION")
			for _, s := range resp.GetSchedules() {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.GetName(), s.GetCron(), orUTC(s.GetTimeZone()),
					s.GetJob().GetType(), when(s.GetNextRunTime(), now), s.GetDescription())
			}
			return tw.Flush()
		}),
	}
}

func orUTC(tz string) string {
	if tz == "" {
		return "UTC"
	}
	return tz
}

func newScheduleCreateCmd(o *options) *cobra.Command {
	var (
		cronSpec, tz, typ, payload, payloadFile, queue, description string
		labels                                                      []string
	)
	cmd := &cobra.Command{
		Use:   "create --cron SPEC --type TYPE",
		Short: "Create a schedule",
		Long: `Create a schedule: --cron is a five-field cron spec or a descriptor such as
@hourly, @daily or "@every 30s"; --tz an IANA time zone (default UTC). The job
template is validated like jobctl submit.`,
		Example: `  jobctl schedules create --cron "30 9 * * 1-5" --tz Europe/Berlin --type report \
      --payload '{"title":"daily","pages":20}' --description "weekday report"
  jobctl schedules create --cron "@every 10m" --type primes --payload '{"limit":1000000}'`,
		Args: exactArgs(),
		RunE: action(func(cmd *cobra.Command, _ []string) error {
			p, err := o.parsePayload(payload, payloadFile)
			if err != nil {
				return err
			}
			lm, err := parseLabels(labels)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := o.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			s, err := schedules(c).CreateSchedule(ctx, &jobforgev1.CreateScheduleRequest{Schedule: &jobforgev1.Schedule{
				Cron: cronSpec, TimeZone: tz, Description: description,
				Job: &jobforgev1.Job{Type: typ, Payload: p, Queue: queue, Labels: lm},
			}})
			if err != nil {
				return err
			}
			if o.json() {
				return printJSON(o.stdout, s)
			}
			fmt.Fprintf(o.stdout, "%s created: %s at %q (%s); next run %s\n", s.GetName(), s.GetJob().GetType(),
				s.GetCron(), orUTC(s.GetTimeZone()), when(s.GetNextRunTime(), time.Now()))
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&cronSpec, "cron", "", "cron spec, e.g. \"*/5 * * * *\" or \"@every 30s\" (required)")
	f.StringVar(&tz, "tz", "", "IANA time zone the spec is evaluated in (default UTC)")
	f.StringVar(&typ, "type", "", "job type (required)")
	f.StringVarP(&payload, "payload", "p", "", "job payload, a JSON object")
	f.StringVarP(&payloadFile, "payload-file", "f", "", "read the payload from a file; - reads stdin")
	f.StringVarP(&queue, "queue", "q", "", "queue of the jobs (default: the type's)")
	f.StringArrayVarP(&labels, "label", "l", nil, "label key=value of the jobs; repeat for more")
	f.StringVar(&description, "description", "", "what the schedule is for")
	_ = cmd.MarkFlagRequired("cron")
	_ = cmd.MarkFlagRequired("type")
	cmd.MarkFlagsMutuallyExclusive("payload", "payload-file")
	return cmd
}

func newScheduleDeleteCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME|ID",
		Short:   "Delete a schedule (jobs it created are kept)",
		Example: "  jobctl schedules delete schedules/0193e0c4-5b1e-7c2a-9f4e-2d6b8a1c3e5f",
		Args:    exactArgs("NAME|ID"),
		RunE: action(func(cmd *cobra.Command, args []string) error {
			name, err := resourceName("schedules", args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			c, err := o.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := schedules(c).DeleteSchedule(ctx, &jobforgev1.DeleteScheduleRequest{Name: name}); err != nil {
				return err
			}
			if o.json() {
				_, err := fmt.Fprintln(o.stdout, "{}")
				return err
			}
			fmt.Fprintf(o.stdout, "%s deleted\n", name)
			return nil
		}),
	}
}
