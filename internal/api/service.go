// Package api implements jobforge.v1.JobService and serves it over gRPC and,
// through the in-process REST gateway, over HTTP/JSON.
package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/queue"
	"github.com/jobforge/jobforge/jobs"
)

// Store is what the service needs from the queue layer.
type Store interface {
	Create(ctx context.Context, nj queue.NewJob) (*queue.Record, error)
	Get(ctx context.Context, id string) (*queue.Record, error)
}

// Scheduling bounds. A schedule time up to maxSchedulePast in the past is
// accepted and means "now" (clock skew, retried requests); further back is
// almost certainly a bug in the caller.
const (
	maxSchedulePast   = 24 * time.Hour
	maxScheduleFuture = 366 * 24 * time.Hour
)

// Service implements jobforgev1.JobServiceServer.
type Service struct {
	jobforgev1.UnimplementedJobServiceServer

	store  Store
	reg    *jobs.Registry
	queues []string // sorted
	log    *slog.Logger
	now    func() time.Time
}

// NewService returns the JobService implementation. queues are the queue
// names workers read; a job may only be put on one of them.
func NewService(store Store, reg *jobs.Registry, queues []string, log *slog.Logger) *Service {
	q := slices.Clone(queues)
	slices.Sort(q)
	return &Service{store: store, reg: reg, queues: q, log: log, now: time.Now}
}

// CreateJob implements JobService.CreateJob.
func (s *Service) CreateJob(ctx context.Context, req *jobforgev1.CreateJobRequest) (*jobforgev1.Job, error) {
	nj, err := s.newJob(req.GetJob())
	if err != nil {
		return nil, err
	}
	rec, err := s.store.Create(ctx, nj)
	if err != nil {
		return nil, fmt.Errorf("create job: %w", err)
	}
	return toProto(rec)
}

// newJob validates what protovalidate cannot know (registered types, queues,
// payload schemas) and applies the type's defaults.
func (s *Service) newJob(j *jobforgev1.Job) (queue.NewJob, error) {
	typ, ok := s.reg.Lookup(j.GetType())
	if !ok {
		return queue.NewJob{}, invalidArgument(violation("job.type",
			"unknown job type %q; registered types: %s (see GET /v1/jobTypes)", j.GetType(), strings.Join(s.typeNames(), ", ")))
	}
	payload := json.RawMessage("{}")
	if j.GetPayload() != nil {
		b, err := json.Marshal(j.GetPayload().AsMap())
		if err != nil {
			return queue.NewJob{}, invalidArgument(violation("job.payload", "cannot encode payload: %v", err))
		}
		payload = b
	}
	if err := typ.Validate(payload); err != nil {
		return queue.NewJob{}, payloadError(err)
	}
	nj := queue.NewJob{
		Type:        typ.Name(),
		Queue:       j.GetQueue(),
		Payload:     payload,
		Labels:      j.GetLabels(),
		MaxAttempts: int(j.GetMaxAttempts()),
		Timeout:     typ.Timeout(),
	}
	if nj.Queue == "" {
		nj.Queue = typ.Queue()
	}
	if _, ok := slices.BinarySearch(s.queues, nj.Queue); !ok {
		return queue.NewJob{}, invalidArgument(violation("job.queue",
			"unknown queue %q; configured queues: %s", nj.Queue, strings.Join(s.queues, ", ")))
	}
	if nj.MaxAttempts == 0 {
		nj.MaxAttempts = typ.MaxAttempts()
	}
	if j.GetTimeout() != nil {
		nj.Timeout = j.GetTimeout().AsDuration()
	}
	if ts := j.GetScheduleTime(); ts != nil {
		t, now := ts.AsTime(), s.now()
		if t.Before(now.Add(-maxSchedulePast)) || t.After(now.Add(maxScheduleFuture)) {
			return queue.NewJob{}, invalidArgument(violation("job.schedule_time",
				"must be between %s and %s (at most 24h in the past, which means now, and at most 366 days ahead), got %s",
				now.Add(-maxSchedulePast).UTC().Format(time.RFC3339), now.Add(maxScheduleFuture).UTC().Format(time.RFC3339),
				t.UTC().Format(time.RFC3339)))
		}
		nj.ScheduleTime = t
	}
	return nj, nil
}

func (s *Service) typeNames() []string {
	types := s.reg.Types()
	names := make([]string, len(types))
	for i, t := range types {
		names[i] = t.Name()
	}
	return names
}

// payloadError turns a job type's validation error into field violations
// under job.payload.
func payloadError(err error) error {
	ve, ok := err.(*jobs.ValidationError)
	if !ok {
		return invalidArgument(violation("job.payload", "%v", err))
	}
	vs := make([]*fieldViolation, 0, len(ve.Violations))
	for _, v := range ve.Violations {
		field := "job.payload"
		if v.Field != "" {
			field += "." + v.Field
		}
		vs = append(vs, violation(field, "%s", v.Description))
	}
	return invalidArgument(vs...)
}

// GetJob implements JobService.GetJob.
func (s *Service) GetJob(ctx context.Context, req *jobforgev1.GetJobRequest) (*jobforgev1.Job, error) {
	id := strings.TrimPrefix(req.GetName(), "jobs/")
	rec, err := s.store.Get(ctx, id)
	if err != nil {
		return nil, notFound(req.GetName(), err)
	}
	return toProto(rec)
}

// ListJobTypes implements JobService.ListJobTypes.
func (s *Service) ListJobTypes(context.Context, *jobforgev1.ListJobTypesRequest) (*jobforgev1.ListJobTypesResponse, error) {
	types := s.reg.Types()
	resp := &jobforgev1.ListJobTypesResponse{JobTypes: make([]*jobforgev1.JobType, 0, len(types))}
	for _, t := range types {
		jt, err := jobTypeProto(t)
		if err != nil {
			return nil, err
		}
		resp.JobTypes = append(resp.JobTypes, jt)
	}
	return resp, nil
}

func jobTypeProto(t *jobs.Type) (*jobforgev1.JobType, error) {
	example, err := jsonStruct(t.Example())
	if err != nil {
		return nil, fmt.Errorf("job type %s: example: %w", t.Name(), err)
	}
	schema, err := jsonStruct(t.Schema())
	if err != nil {
		return nil, fmt.Errorf("job type %s: schema: %w", t.Name(), err)
	}
	return &jobforgev1.JobType{
		Name:           t.Name(),
		Description:    t.Description(),
		Queue:          t.Queue(),
		Timeout:        durationProto(t.Timeout()),
		MaxAttempts:    int32(t.MaxAttempts()),
		ExamplePayload: example,
		PayloadSchema:  schema,
	}, nil
}

func jsonStruct(b []byte) (*structpb.Struct, error) {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return structpb.NewStruct(m)
}
