// Package api implements jobforge's gRPC services and serves them over gRPC
// and, through the in-process REST gateway, over HTTP/JSON.
package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/code"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/auth"
	"github.com/jobforge/jobforge/internal/catalog"
	"github.com/jobforge/jobforge/internal/store"
	"github.com/jobforge/jobforge/jobs"
)

// Catalog is the job-type catalogue that workers publish (catalog.Cache).
type Catalog interface {
	// Get returns the current catalogue (at most a second old).
	Get(ctx context.Context) (*catalog.Catalog, error)
	// Refresh reads the catalogue now and returns it.
	Refresh(ctx context.Context) (*catalog.Catalog, error)
	// Lookup returns the named type (nil when unknown) and the catalogue
	// it was looked up in.
	Lookup(ctx context.Context, name string) (*catalog.Type, *catalog.Catalog, error)
}

// Scheduling bounds. A schedule time up to maxSchedulePast in the past is
// accepted and means "now" (clock skew, retried requests); further back is
// almost certainly a bug in the caller.
const (
	maxSchedulePast   = 24 * time.Hour
	maxScheduleFuture = 366 * 24 * time.Hour
)

// List page sizes.
const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// defaultTenant owns every job when authentication is disabled.
const defaultTenant = "default"

// tenantOf is the tenant of the caller; every lookup goes through it.
func tenantOf(ctx context.Context) string {
	if p := auth.FromContext(ctx); p != nil {
		return p.Tenant
	}
	return defaultTenant
}

// principalOf names the caller in audit fields such as Cancellation.
func principalOf(ctx context.Context) string {
	if p := auth.FromContext(ctx); p != nil {
		return p.ID
	}
	return anonymous.ID
}

// Service implements jobforgev1.JobServiceServer.
type Service struct {
	jobforgev1.UnimplementedJobServiceServer

	store   store.JobStore
	catalog Catalog
	queues  []string // sorted
	tokens  pageTokens
	log     *slog.Logger
	now     func() time.Time
}

// NewService returns the JobService implementation. queues are the queue
// names workers read; a job may only be put on one of them. pageTokenKey
// signs ListJobs page tokens and must be the same on every API replica.
func NewService(store store.JobStore, types Catalog, queues []string, pageTokenKey []byte, log *slog.Logger) *Service {
	q := slices.Clone(queues)
	slices.Sort(q)
	return &Service{store: store, catalog: types, queues: q, tokens: pageTokens{key: pageTokenKey}, log: log, now: time.Now}
}

// CreateJob implements JobService.CreateJob.
func (s *Service) CreateJob(ctx context.Context, req *jobforgev1.CreateJobRequest) (*jobforgev1.Job, error) {
	j := req.GetJob()
	if key := idempotencyHeader(ctx); key != "" {
		if j.GetIdempotencyKey() != "" && j.GetIdempotencyKey() != key {
			return nil, invalidArgument(violation("job.idempotency_key", "differs from the Idempotency-Key header"))
		}
		if !validIdempotencyKey(key) {
			return nil, invalidArgument(violation("job.idempotency_key",
				"Idempotency-Key header must be 1-128 characters of letters, digits, '.', '_', ':' and '-'"))
		}
		j = proto.CloneOf(j)
		j.IdempotencyKey = key
	}
	nj, err := s.newJob(ctx, j, jobPath{name: "job", item: -1})
	if err != nil {
		return nil, err
	}
	rec, existed, err := s.store.Create(ctx, nj)
	if err != nil {
		return nil, fmt.Errorf("create job: %w", err)
	}
	auditJob(ctx, s.log, "audit: job created", nj.Tenant, rec)
	var sent *structpb.Struct
	if !existed { // as in BatchCreateJobs: a job created before may hold another payload
		sent = j.GetPayload()
	}
	return toProtoPayload(rec, sent)
}

// ValidateJob validates a job (or job template) like CreateJob does and
// returns it with the type's defaults applied.
func (s *Service) ValidateJob(ctx context.Context, j *jobforgev1.Job, field string) (store.NewJob, error) {
	return s.newJob(ctx, j, jobPath{name: field, item: -1})
}

// jobPath is the request path of a job, for field violations: name, or
// name[item].job for an item of a batch. A batch's are formatted only when
// a violation is, not for each item.
type jobPath struct {
	name string
	item int // -1 outside a batch
}

func (p jobPath) String() string {
	if p.item < 0 {
		return p.name
	}
	return fmt.Sprintf("%s[%d].job", p.name, p.item)
}

// field is the path of one of the job's fields.
func (p jobPath) field(f string) string { return p.String() + "." + f }

// newJob validates what protovalidate cannot know (registered types, queues,
// payload schemas, cross-field rules) and applies the type's defaults.
// at is the request path of j, used in field violations.
func (s *Service) newJob(ctx context.Context, j *jobforgev1.Job, at jobPath) (store.NewJob, error) {
	if p := auth.FromContext(ctx); p != nil && !p.AllowsType(auth.ScopeJobsWrite, j.GetType()) {
		return store.NewJob{}, permissionDenied(auth.ScopeJobsWrite + ":" + j.GetType())
	}
	typ, cat, err := s.catalog.Lookup(ctx, j.GetType())
	if err != nil {
		return store.NewJob{}, err
	}
	if typ == nil {
		known := "none yet (no worker has published a job type)"
		if names := cat.Names(); len(names) > 0 {
			known = strings.Join(names, ", ")
		}
		return store.NewJob{}, invalidArgument(violation(at.field("type"),
			"unknown job type %q; known types: %s (see GET /v1/jobTypes)", j.GetType(), known))
	}
	payload, value := json.RawMessage("{}"), any(map[string]any{})
	if j.GetPayload() != nil {
		m := j.GetPayload().AsMap()
		b, err := json.Marshal(m)
		if err != nil {
			return store.NewJob{}, invalidArgument(violation(at.field("payload"), "cannot encode payload: %v", err))
		}
		payload, value = b, m
	}
	if max := typ.MaxPayloadBytes; len(payload) > max {
		return store.NewJob{}, invalidArgument(violation(at.field("payload"),
			"payload is %d bytes of JSON; job type %q accepts at most %d", len(payload), typ.Name, max))
	}
	if err := typ.Validate(value); err != nil {
		if errors.Is(err, catalog.ErrInvalidSchema) {
			return store.NewJob{}, failedPrecondition(reasonInvalidSchema,
				fmt.Sprintf("job type %q is published with a payload schema that does not compile; fix its worker", typ.Name))
		}
		return store.NewJob{}, payloadError(at.String(), err)
	}
	nj := store.NewJob{
		Tenant:         tenantOf(ctx),
		Type:           typ.Name,
		Queue:          j.GetQueue(),
		Payload:        payload,
		Labels:         j.GetLabels(),
		MaxAttempts:    int(j.GetMaxAttempts()),
		Timeout:        typ.Timeout(),
		IdempotencyKey: j.GetIdempotencyKey(),
	}
	if nj.Queue == "" {
		nj.Queue = typ.Queue
	}
	if !slices.Contains(s.queues, nj.Queue) && !cat.HasQueue(nj.Queue) {
		return store.NewJob{}, invalidArgument(violation(at.field("queue"),
			"unknown queue %q; known queues: %s", nj.Queue, strings.Join(s.knownQueues(cat), ", ")))
	}
	if nj.MaxAttempts == 0 {
		nj.MaxAttempts = typ.MaxAttempts
	}
	if j.GetTimeout() != nil {
		nj.Timeout = j.GetTimeout().AsDuration()
		if nj.Timeout < 10*time.Millisecond {
			return store.NewJob{}, invalidArgument(violation(at.field("timeout"),
				"must be at least 10ms (sub-second timeouts are enforced with millisecond precision), got %s", nj.Timeout))
		}
	}
	now := s.now()
	switch {
	case j.GetScheduleTime() != nil && j.GetScheduleDelay() != nil:
		return store.NewJob{}, invalidArgument(violation(at.field("schedule_delay"), "set schedule_time or schedule_delay, not both"))
	case j.GetScheduleTime() != nil:
		t := j.GetScheduleTime().AsTime()
		if t.Before(now.Add(-maxSchedulePast)) || t.After(now.Add(maxScheduleFuture)) {
			return store.NewJob{}, invalidArgument(violation(at.field("schedule_time"),
				"must be between %s and %s (at most 24h in the past, which means now, and at most 366 days ahead), got %s",
				now.Add(-maxSchedulePast).UTC().Format(time.RFC3339), now.Add(maxScheduleFuture).UTC().Format(time.RFC3339),
				t.UTC().Format(time.RFC3339)))
		}
		nj.ScheduleTime = t
	case j.GetScheduleDelay() != nil:
		nj.ScheduleTime = now.Add(j.GetScheduleDelay().AsDuration())
	}
	if rp := j.GetRetryPolicy(); rp != nil {
		p := store.RetryPolicy{
			Initial:    rp.GetInitialBackoff().AsDuration(),
			Max:        rp.GetMaxBackoff().AsDuration(),
			Multiplier: rp.GetMultiplier(),
			Jitter:     rp.GetJitter(),
		}
		if p.Multiplier != 0 && p.Multiplier < 1 {
			return store.NewJob{}, invalidArgument(violation(at.field("retry_policy.multiplier"), "must be between 1 and 10 (or 0 for the default 2), got %g", p.Multiplier))
		}
		if p.Initial > 0 && p.Max > 0 && p.Max < p.Initial {
			return store.NewJob{}, invalidArgument(violation(at.field("retry_policy.max_backoff"), "must not be below initial_backoff"))
		}
		nj.RetryPolicy = p
	}
	if nj.IdempotencyKey != "" {
		nj.RequestHash = requestHash(j)
	}
	return nj, nil
}

// requestHash identifies a create request for idempotency: two requests
// with the same key are "the same request" when their inputs are equal.
func requestHash(j *jobforgev1.Job) string {
	in := &jobforgev1.Job{
		Type: j.GetType(), Payload: j.GetPayload(), Queue: j.GetQueue(), MaxAttempts: j.GetMaxAttempts(),
		Timeout: j.GetTimeout(), ScheduleTime: j.GetScheduleTime(), ScheduleDelay: j.GetScheduleDelay(),
		Labels: j.GetLabels(), RetryPolicy: j.GetRetryPolicy(),
	}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(in)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

func idempotencyHeader(ctx context.Context) string {
	if v := metadata.ValueFromIncomingContext(ctx, idempotencyKeyHeader); len(v) > 0 {
		return v[0]
	}
	return ""
}

func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > 128 {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._:-", c)) {
			return false
		}
	}
	return true
}

// knownQueues are the queues a job may be put on: the API's configured
// queues and every published type's default queue (a type in a user's
// module may bring its own queue, read by the user's worker), sorted.
func (s *Service) knownQueues(cat *catalog.Catalog) []string {
	known := slices.Clone(s.queues)
	for _, t := range cat.Types() {
		known = append(known, t.Queue)
	}
	slices.Sort(known)
	return slices.Compact(known)
}

// payloadError turns a job type's validation error into field violations
// under <field>.payload.
func payloadError(field string, err error) error {
	var ve *jobs.ValidationError
	if !errors.As(err, &ve) {
		return invalidArgument(violation(field+".payload", "%v", err))
	}
	vs := make([]*fieldViolation, 0, len(ve.Violations))
	for _, v := range ve.Violations {
		f := field + ".payload"
		if v.Field != "" {
			f += "." + v.Field
		}
		vs = append(vs, violation(f, "%s", v.Description))
	}
	return invalidArgument(vs...)
}

// BatchCreateJobs implements JobService.BatchCreateJobs.
func (s *Service) BatchCreateJobs(ctx context.Context, req *jobforgev1.BatchCreateJobsRequest) (*jobforgev1.BatchCreateJobsResponse, error) {
	n := len(req.GetRequests())
	results := make([]*jobforgev1.BatchCreateJobResult, n)
	valid := make([]store.NewJob, 0, n)
	index := make([]int, 0, n)
	invalid := false
	for i, r := range req.GetRequests() {
		nj, err := s.newJob(ctx, r.GetJob(), jobPath{name: "requests", item: i})
		if err != nil {
			results[i] = &jobforgev1.BatchCreateJobResult{Error: status.Convert(err).Proto()}
			invalid = true
			continue
		}
		valid = append(valid, nj)
		index = append(index, i)
	}
	if invalid && req.GetAllOrNothing() {
		for _, i := range index {
			results[i] = &jobforgev1.BatchCreateJobResult{Error: &spb.Status{
				Code: int32(code.Code_ABORTED), Message: "not created: another item is invalid and all_or_nothing is set",
			}}
		}
		return &jobforgev1.BatchCreateJobsResponse{Results: results}, nil
	}
	created := s.store.CreateMany(ctx, valid, req.GetAllOrNothing())
	for k, res := range created {
		i := index[k]
		if res.Err != nil {
			st := status.Convert(toStatus(ctx, s.log, "BatchCreateJobs", res.Err)).Proto()
			if req.GetAllOrNothing() && st.GetCode() == int32(code.Code_INTERNAL) {
				st = &spb.Status{Code: int32(code.Code_ABORTED), Message: "not created: storing another item failed"}
			}
			results[i] = &jobforgev1.BatchCreateJobResult{Error: st}
			continue
		}
		var sent *structpb.Struct
		if !res.Existed { // a job created before may hold another payload
			sent = req.GetRequests()[i].GetJob().GetPayload()
		}
		j, err := toProtoPayload(res.Record, sent)
		if err != nil {
			return nil, err
		}
		results[i] = &jobforgev1.BatchCreateJobResult{Job: j}
	}
	audit(ctx, s.log, "audit: jobs created in batch", slog.String("tenant", tenantOf(ctx)),
		slog.Int("requested", n), slog.Int("created", len(valid)))
	return &jobforgev1.BatchCreateJobsResponse{Results: results}, nil
}

func jobID(name string) string { return strings.TrimPrefix(name, "jobs/") }

// GetJob implements JobService.GetJob.
func (s *Service) GetJob(ctx context.Context, req *jobforgev1.GetJobRequest) (*jobforgev1.Job, error) {
	rec, err := s.store.Get(ctx, tenantOf(ctx), jobID(req.GetName()))
	if err != nil {
		return nil, notFound(req.GetName(), err)
	}
	return toProto(rec)
}

// CancelJob implements JobService.CancelJob.
func (s *Service) CancelJob(ctx context.Context, req *jobforgev1.CancelJobRequest) (*jobforgev1.Job, error) {
	tenant := tenantOf(ctx)
	rec, err := s.store.Cancel(ctx, tenant, jobID(req.GetName()), req.GetReason(), principalOf(ctx))
	if err != nil {
		return nil, notFound(req.GetName(), err)
	}
	auditJob(ctx, s.log, "audit: job cancelled", tenant, rec)
	return toProto(rec)
}

// RetryJob implements JobService.RetryJob.
func (s *Service) RetryJob(ctx context.Context, req *jobforgev1.RetryJobRequest) (*jobforgev1.Job, error) {
	tenant := tenantOf(ctx)
	rec, err := s.store.Retry(ctx, tenant, jobID(req.GetName()))
	if err != nil {
		return nil, notFound(req.GetName(), err)
	}
	auditJob(ctx, s.log, "audit: job retried", tenant, rec)
	return toProto(rec)
}

// WatchJob implements JobService.WatchJob.
func (s *Service) WatchJob(req *jobforgev1.WatchJobRequest, stream grpc.ServerStreamingServer[jobforgev1.JobEvent]) error {
	ctx := stream.Context()
	err := s.store.Watch(ctx, tenantOf(ctx), jobID(req.GetName()), req.GetAfterEventId(), func(ev store.Event) error {
		msg, err := eventProto(ev)
		if err != nil {
			return err
		}
		return stream.Send(msg)
	})
	return notFound(req.GetName(), err)
}

// ListJobs implements JobService.ListJobs.
func (s *Service) ListJobs(ctx context.Context, req *jobforgev1.ListJobsRequest) (*jobforgev1.ListJobsResponse, error) {
	f, err := parseFilter(req.GetFilter())
	if err != nil {
		return nil, invalidArgument(violation("filter", "%v", err))
	}
	tenant := tenantOf(ctx)
	size := int(req.GetPageSize())
	if size == 0 {
		size = defaultPageSize
	}
	q := store.ListQuery{
		Tenant: tenant, Match: f.match, Limit: size,
		CreatedAfter: f.createdAfter, CreatedBefore: f.createdBefore,
	}
	if tok := req.GetPageToken(); tok != "" {
		c, err := s.tokens.decode(tok, f.hash(), tenant)
		if err != nil {
			return nil, invalidArgument(violation("page_token", "%v", err))
		}
		q.After = c
	}
	recs, next, err := s.store.List(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	resp := &jobforgev1.ListJobsResponse{Jobs: make([]*jobforgev1.Job, 0, len(recs))}
	for _, r := range recs {
		j, err := toProto(r)
		if err != nil {
			return nil, err
		}
		resp.Jobs = append(resp.Jobs, j)
	}
	if next != nil {
		resp.NextPageToken = s.tokens.encode(next, f.hash(), tenant)
	}
	return resp, nil
}

// ListJobTypes implements JobService.ListJobTypes.
func (s *Service) ListJobTypes(ctx context.Context, _ *jobforgev1.ListJobTypesRequest) (*jobforgev1.ListJobTypesResponse, error) {
	cat, err := s.catalog.Refresh(ctx) // a worker that started a moment ago is listed
	if err != nil {
		return nil, err
	}
	types := cat.Types()
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

func jobTypeProto(t *catalog.Type) (*jobforgev1.JobType, error) {
	jt, err := entryProto(t.Entry)
	if err != nil {
		return nil, err
	}
	jt.Workers = t.Workers
	jt.Definition = t.Digest
	for _, c := range t.Conflicts {
		cp, err := entryProto(c)
		if err != nil {
			return nil, err
		}
		cp.Definition = c.Digest()
		jt.ConflictingDefinitions = append(jt.ConflictingDefinitions, cp)
	}
	return jt, nil
}

func entryProto(e catalog.Entry) (*jobforgev1.JobType, error) {
	var example *structpb.Struct
	if len(e.Example) > 0 {
		var err error
		if example, err = jsonStruct(e.Example); err != nil {
			return nil, fmt.Errorf("job type %s: example: %w", e.Name, err)
		}
	}
	schema, err := jsonStruct(e.Schema)
	if err != nil {
		return nil, fmt.Errorf("job type %s: schema: %w", e.Name, err)
	}
	return &jobforgev1.JobType{
		Name:           e.Name,
		Description:    e.Description,
		Queue:          e.Queue,
		Timeout:        durationProto(e.Timeout()),
		MaxAttempts:    int32(e.MaxAttempts),
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
