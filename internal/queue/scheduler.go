package queue

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"time"

	"github.com/jobforge/jobforge/internal/store"
)

// SchedulerOptions configures a Scheduler.
type SchedulerOptions struct {
	// Tick is the longest the scheduler sleeps between two looks at the
	// schedules, and so how long a new or deleted schedule may take to
	// take effect. It wakes earlier when a period starts. Default 1s.
	Tick time.Duration
	// CatchUp is how late a period may still get its job, e.g. after every
	// scheduler was down. Only the most recent missed period is created,
	// never a burst. Default 5m.
	CatchUp time.Duration
	Logger  *slog.Logger
}

// Scheduler creates the jobs of schedules. Run one in every worker process:
// replicas need no coordination, because the job of a period has an id
// derived from the schedule and the period start, and a job is only
// created if no job with that id exists. asynq's own Scheduler is not used:
// each of its replicas enqueues every period.
type Scheduler struct {
	store *Store
	opts  SchedulerOptions
	log   *slog.Logger
	// done holds, per schedule, the latest period whose job this replica
	// created or found, so each replica touches Redis once per period.
	done map[string]time.Time
}

// NewScheduler returns a Scheduler creating jobs through store.
func NewScheduler(store *Store, opts SchedulerOptions) *Scheduler {
	if opts.Tick <= 0 {
		opts.Tick = time.Second
	}
	if opts.CatchUp <= 0 {
		opts.CatchUp = 5 * time.Minute
	}
	log := opts.Logger
	if log == nil {
		log = store.log
	}
	return &Scheduler{store: store, opts: opts, log: log, done: map[string]time.Time{}}
}

// Run creates the job of every due period until ctx is done, then returns
// nil. Redis errors are logged and retried on the next tick.
func (s *Scheduler) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		timer.Reset(s.tick(ctx))
	}
}

// tick creates due jobs and returns how long to sleep: until the next
// period start, at most Tick.
func (s *Scheduler) tick(ctx context.Context) time.Duration {
	// The clock is read before the schedules: a schedule deleted before the
	// read is not seen, and one deleted after it gets no period later than
	// now, so no job belongs to a period after the delete.
	now := s.store.now()
	all, err := s.store.allSchedules(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.WarnContext(ctx, "scheduler: read schedules", "error", err)
		}
		return s.opts.Tick
	}
	wake := now.Add(s.opts.Tick)
	live := make(map[string]bool, len(all))
	for _, sc := range all {
		live[sc.ID] = true
		if p, ok := sc.LatestRun(now, s.opts.CatchUp); ok && p.After(s.done[sc.ID]) {
			if err := s.fire(ctx, sc, p); err != nil {
				if ctx.Err() == nil {
					s.log.ErrorContext(ctx, "scheduler: create job", "schedule_id", sc.ID, "period", p, "error", err)
				}
			} else {
				s.done[sc.ID] = p
			}
		}
		if next := sc.NextRun(now); !next.IsZero() && next.Before(wake) {
			wake = next
		}
	}
	maps.DeleteFunc(s.done, func(id string, _ time.Time) bool { return !live[id] })
	return max(wake.Sub(s.store.now()), 0)
}

// fire creates the job of schedule sc for the period starting at p, unless
// it exists already.
func (s *Scheduler) fire(ctx context.Context, sc *store.Schedule, p time.Time) error {
	nj := sc.Job
	nj.ID = ScheduleJobID(sc.ID, p)
	nj.Tenant = sc.Tenant
	nj.Labels = maps.Clone(sc.Job.Labels)
	if nj.Labels == nil {
		nj.Labels = map[string]string{}
	}
	nj.Labels[store.ScheduleLabel] = sc.ID
	nj.IdempotencyKey, nj.RequestHash = "", ""
	nj.ScheduleTime = time.Time{}
	if sc.Delay > 0 {
		nj.ScheduleTime = p.Add(sc.Delay)
	}
	// Usually another replica was first: Create then writes nothing and
	// returns the job that replica created.
	rec, existed, err := s.store.Create(ctx, nj)
	var quota *store.QuotaError
	if errors.As(err, &quota) {
		// Retrying every tick would only repeat the warning: this period
		// goes without its job, the next one tries again.
		s.log.WarnContext(ctx, "scheduled job not created: tenant's waiting-job quota is full",
			"schedule_id", sc.ID, "period", p.Format(time.RFC3339), "tenant", sc.Tenant, "limit", quota.Limit)
		return nil
	}
	if err != nil {
		return err
	}
	if existed {
		s.log.DebugContext(ctx, "scheduled job exists already", "schedule_id", sc.ID, "job_id", rec.ID,
			"period", p.Format(time.RFC3339), "state", rec.State)
		return nil
	}
	s.log.InfoContext(ctx, "scheduled job created", "schedule_id", sc.ID, "job_id", rec.ID,
		"period", p.Format(time.RFC3339), "type", rec.Type, "queue", rec.Queue)
	return nil
}
