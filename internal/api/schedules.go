package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/store"
)

// reasonScheduleNotFound is the ErrorInfo reason of a missing schedule.
// Stable: clients may switch on it.
const reasonScheduleNotFound = "SCHEDULE_NOT_FOUND"

// maxJobLabels is Job.labels' max_pairs; a schedule's template leaves room
// for the schedule label.
const maxJobLabels = 16

// JobValidator validates a job template exactly as CreateJob validates a
// job; *Service implements it. field is the request path of the job, used
// in field violations.
type JobValidator interface {
	ValidateJob(ctx context.Context, j *jobforgev1.Job, field string) (store.NewJob, error)
}

// ScheduleService implements jobforgev1.ScheduleServiceServer.
type ScheduleService struct {
	jobforgev1.UnimplementedScheduleServiceServer

	store store.ScheduleStore
	jobs  JobValidator
	log   *slog.Logger
	now   func() time.Time
}

// NewScheduleService returns the ScheduleService implementation. Job
// templates are validated by jobs.
func NewScheduleService(store store.ScheduleStore, jobs JobValidator, log *slog.Logger) *ScheduleService {
	return &ScheduleService{store: store, jobs: jobs, log: log, now: time.Now}
}

// CreateSchedule implements ScheduleService.CreateSchedule.
func (s *ScheduleService) CreateSchedule(ctx context.Context, req *jobforgev1.CreateScheduleRequest) (*jobforgev1.Schedule, error) {
	in := req.GetSchedule()
	if _, err := store.ParseSpec(in.GetCron(), in.GetTimeZone()); err != nil {
		var se *store.SpecError
		if errors.As(err, &se) {
			return nil, invalidArgument(violation("schedule."+se.Field, "%s", se.Msg))
		}
		return nil, err
	}
	tmpl := in.GetJob()
	labels := tmpl.GetLabels()
	switch _, reserved := labels[store.ScheduleLabel]; {
	case tmpl.GetScheduleTime() != nil:
		return nil, invalidArgument(violation("schedule.job.schedule_time",
			"a fixed time does not repeat; jobs start at each period, later by schedule_delay if set"))
	case reserved:
		return nil, invalidArgument(violation("schedule.job.labels",
			"label %q is reserved: every job of a schedule gets %s=<schedule id>", store.ScheduleLabel, store.ScheduleLabel))
	case len(labels) >= maxJobLabels:
		return nil, invalidArgument(violation("schedule.job.labels",
			"at most %d labels, so that the label %s=<schedule id> fits; got %d", maxJobLabels-1, store.ScheduleLabel, len(labels)))
	}
	// The delay applies per period, not from now; the idempotency key would
	// make every period the same request.
	t := proto.CloneOf(tmpl)
	t.ScheduleDelay, t.IdempotencyKey = nil, ""
	nj, err := s.jobs.ValidateJob(ctx, t, "schedule.job")
	if err != nil {
		return nil, err
	}
	sc, err := s.store.CreateSchedule(ctx, store.Schedule{
		Tenant:      tenantOf(ctx),
		Cron:        strings.TrimSpace(in.GetCron()),
		TimeZone:    in.GetTimeZone(),
		Description: in.GetDescription(),
		Job:         nj,
		Delay:       tmpl.GetScheduleDelay().AsDuration(),
	})
	if err != nil {
		return nil, fmt.Errorf("create schedule: %w", err)
	}
	audit(ctx, s.log, "audit: schedule created", slog.String("tenant", sc.Tenant),
		slog.String("schedule_id", sc.ID), slog.String("cron", sc.Cron), slog.String("time_zone", sc.TimeZone), slog.String("type", sc.Job.Type))
	return scheduleProto(sc, s.now())
}

func scheduleID(name string) string { return strings.TrimPrefix(name, "schedules/") }

// GetSchedule implements ScheduleService.GetSchedule.
func (s *ScheduleService) GetSchedule(ctx context.Context, req *jobforgev1.GetScheduleRequest) (*jobforgev1.Schedule, error) {
	sc, err := s.store.GetSchedule(ctx, tenantOf(ctx), scheduleID(req.GetName()))
	if err != nil {
		return nil, scheduleError(req.GetName(), err)
	}
	return scheduleProto(sc, s.now())
}

// ListSchedules implements ScheduleService.ListSchedules.
func (s *ScheduleService) ListSchedules(ctx context.Context, _ *jobforgev1.ListSchedulesRequest) (*jobforgev1.ListSchedulesResponse, error) {
	all, err := s.store.ListSchedules(ctx, tenantOf(ctx))
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	now := s.now()
	resp := &jobforgev1.ListSchedulesResponse{Schedules: make([]*jobforgev1.Schedule, 0, len(all))}
	for _, sc := range all {
		p, err := scheduleProto(sc, now)
		if err != nil {
			return nil, err
		}
		resp.Schedules = append(resp.Schedules, p)
	}
	return resp, nil
}

// DeleteSchedule implements ScheduleService.DeleteSchedule.
func (s *ScheduleService) DeleteSchedule(ctx context.Context, req *jobforgev1.DeleteScheduleRequest) (*emptypb.Empty, error) {
	tenant := tenantOf(ctx)
	id := scheduleID(req.GetName())
	if err := s.store.DeleteSchedule(ctx, tenant, id); err != nil {
		return nil, scheduleError(req.GetName(), err)
	}
	audit(ctx, s.log, "audit: schedule deleted", slog.String("tenant", tenant), slog.String("schedule_id", id))
	return &emptypb.Empty{}, nil
}

func scheduleError(name string, err error) error {
	if errors.Is(err, store.ErrScheduleNotFound) {
		return withDetails(codes.NotFound, fmt.Sprintf("schedule %q not found", name),
			&errdetails.ErrorInfo{Reason: reasonScheduleNotFound, Domain: errorDomain},
			&errdetails.ResourceInfo{ResourceType: "jobforge.dev/Schedule", ResourceName: name})
	}
	return err
}

// scheduleProto converts a stored schedule; the job template shows the
// type defaults that were applied when the schedule was created.
func scheduleProto(sc *store.Schedule, now time.Time) (*jobforgev1.Schedule, error) {
	j := &jobforgev1.Job{
		Type:          sc.Job.Type,
		Queue:         sc.Job.Queue,
		MaxAttempts:   int32(sc.Job.MaxAttempts),
		Timeout:       durationProto(sc.Job.Timeout),
		Labels:        sc.Job.Labels,
		ScheduleDelay: durationProto(sc.Delay),
	}
	if len(sc.Job.Payload) > 0 {
		p, err := jsonStruct(sc.Job.Payload)
		if err != nil {
			return nil, fmt.Errorf("schedule %s: decode payload: %w", sc.ID, err)
		}
		j.Payload = p
	}
	if p := sc.Job.RetryPolicy; !p.IsZero() {
		j.RetryPolicy = &jobforgev1.RetryPolicy{
			InitialBackoff: durationProto(p.Initial),
			MaxBackoff:     durationProto(p.Max),
			Multiplier:     p.Multiplier,
			Jitter:         p.Jitter,
		}
	}
	return &jobforgev1.Schedule{
		Name:        "schedules/" + sc.ID,
		Cron:        sc.Cron,
		TimeZone:    sc.TimeZone,
		Job:         j,
		CreateTime:  timeProto(sc.CreateTime),
		NextRunTime: timeProto(sc.NextRun(now)),
		Description: sc.Description,
	}, nil
}
