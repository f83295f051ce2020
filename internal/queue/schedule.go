package queue

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/jobforge/jobforge/internal/store"
)

// schedulesKey is a hash of every schedule: id → JSON. Schedules are few
// and every scheduler reads all of them on each tick, so one key (one
// Redis Cluster slot) serves best.
const schedulesKey = keyPrefix + "schedules"

// scheduleNamespace derives job ids of scheduled jobs (UUIDv5).
var scheduleNamespace = uuid.MustParse("6f1d8a52-3b8e-4c39-9a57-0d3c1f4be5a1")

// ScheduleJobID is the id of the job a schedule creates for the period
// starting at period. Every scheduler replica derives the same id, so a
// period yields one job however many replicas see it.
func ScheduleJobID(scheduleID string, period time.Time) string {
	return uuid.NewSHA1(scheduleNamespace, []byte(scheduleID+"@"+strconv.FormatInt(period.Unix(), 10))).String()
}

// storedSchedule is the JSON form of a Schedule in Redis.
type storedSchedule struct {
	ID          string            `json:"id"`
	Tenant      string            `json:"tenant"`
	Cron        string            `json:"cron"`
	TimeZone    string            `json:"time_zone"`
	Description string            `json:"description,omitempty"`
	CreateUS    int64             `json:"create_us"`
	DelayMS     int64             `json:"delay_ms,omitempty"`
	Type        string            `json:"type"`
	Queue       string            `json:"queue"`
	Payload     json.RawMessage   `json:"payload"`
	Labels      map[string]string `json:"labels,omitempty"`
	MaxAttempts int               `json:"max_attempts"`
	TimeoutMS   int64             `json:"timeout_ms"`
	RetryPolicy *storedRetry      `json:"retry_policy,omitempty"`
}

// storedRetry is a schedule's retry policy in its JSON: a string in the
// policy's one text form (store.RetryPolicy.String), the form of the job
// record too. Schedules written before were given an object of
// milliseconds; those still read.
type storedRetry struct{ store.RetryPolicy }

func (r *storedRetry) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || b[0] != '{' {
		return json.Unmarshal(b, &r.RetryPolicy)
	}
	var legacy struct {
		InitialMS  int64   `json:"initial_ms"`
		MaxMS      int64   `json:"max_ms"`
		Multiplier float64 `json:"multiplier"`
		Jitter     float64 `json:"jitter"`
	}
	if err := json.Unmarshal(b, &legacy); err != nil {
		return err
	}
	r.RetryPolicy = store.RetryPolicy{
		Initial: time.Duration(legacy.InitialMS) * time.Millisecond, Max: time.Duration(legacy.MaxMS) * time.Millisecond,
		Multiplier: legacy.Multiplier, Jitter: legacy.Jitter,
	}
	return nil
}

func encodeSchedule(sc *store.Schedule) ([]byte, error) {
	st := storedSchedule{
		ID: sc.ID, Tenant: sc.Tenant, Cron: sc.Cron, TimeZone: sc.TimeZone, Description: sc.Description,
		CreateUS: sc.CreateTime.UnixMicro(), DelayMS: sc.Delay.Milliseconds(),
		Type: sc.Job.Type, Queue: sc.Job.Queue, Payload: sc.Job.Payload, Labels: sc.Job.Labels,
		MaxAttempts: sc.Job.MaxAttempts, TimeoutMS: sc.Job.Timeout.Milliseconds(),
	}
	if p := sc.Job.RetryPolicy; !p.IsZero() {
		st.RetryPolicy = &storedRetry{p}
	}
	return json.Marshal(st)
}

func decodeSchedule(raw string) (*store.Schedule, error) {
	var st storedSchedule
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return nil, fmt.Errorf("decode schedule: %w", err)
	}
	sc := &store.Schedule{
		ID: st.ID, Tenant: st.Tenant, Cron: st.Cron, TimeZone: st.TimeZone, Description: st.Description,
		CreateTime: time.UnixMicro(st.CreateUS).UTC(), Delay: time.Duration(st.DelayMS) * time.Millisecond,
		Job: store.NewJob{
			Tenant: st.Tenant, Type: st.Type, Queue: st.Queue, Payload: st.Payload, Labels: st.Labels,
			MaxAttempts: st.MaxAttempts, Timeout: time.Duration(st.TimeoutMS) * time.Millisecond,
		},
	}
	if err := sc.Parse(); err != nil {
		return nil, fmt.Errorf("schedule %s: %w", st.ID, err)
	}
	if st.RetryPolicy != nil {
		sc.Job.RetryPolicy = st.RetryPolicy.RetryPolicy
	}
	return sc, nil
}

// CreateSchedule stores a new schedule and returns it with its id and
// create time. The first job is created at the first period start after
// the create time. The job template must be validated by the caller.
func (s *Store) CreateSchedule(ctx context.Context, sc store.Schedule) (_ *store.Schedule, err error) {
	defer markUnavailable(&err)
	if err := sc.Parse(); err != nil {
		return nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("new schedule id: %w", err)
	}
	sc.ID = id.String()
	sc.CreateTime = s.now().UTC().Truncate(time.Microsecond)
	sc.Job.Labels = maps.Clone(sc.Job.Labels)
	b, err := encodeSchedule(&sc)
	if err != nil {
		return nil, fmt.Errorf("encode schedule: %w", err)
	}
	if err := s.rdb.HSet(ctx, schedulesKey, sc.ID, b).Err(); err != nil {
		return nil, fmt.Errorf("store schedule: %w", err)
	}
	return &sc, nil
}

// GetSchedule returns schedule id of tenant, or ErrScheduleNotFound.
func (s *Store) GetSchedule(ctx context.Context, tenant, id string) (_ *store.Schedule, err error) {
	defer markUnavailable(&err)
	raw, err := s.rdb.HGet(ctx, schedulesKey, id).Result()
	if errors.Is(err, redis.Nil) {
		return nil, store.ErrScheduleNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read schedule: %w", err)
	}
	sc, err := decodeSchedule(raw)
	if err != nil {
		return nil, err
	}
	if sc.Tenant != tenant {
		return nil, store.ErrScheduleNotFound
	}
	return sc, nil
}

// ListSchedules returns every schedule of tenant, oldest first (ids are
// time-ordered).
func (s *Store) ListSchedules(ctx context.Context, tenant string) (_ []*store.Schedule, err error) {
	defer markUnavailable(&err)
	all, err := s.allSchedules(ctx)
	if err != nil {
		return nil, err
	}
	out := slices.DeleteFunc(all, func(sc *store.Schedule) bool { return sc.Tenant != tenant })
	return out, nil
}

// DeleteSchedule removes a schedule: no scheduler creates a job for a
// period starting after this returns (schedulers read the clock before the
// schedules, so only clock skew between machines could shift this). Jobs
// already created are kept.
func (s *Store) DeleteSchedule(ctx context.Context, tenant, id string) (err error) {
	defer markUnavailable(&err)
	if _, err := s.GetSchedule(ctx, tenant, id); err != nil {
		return err
	}
	n, err := s.rdb.HDel(ctx, schedulesKey, id).Result()
	if err != nil {
		return fmt.Errorf("delete schedule: %w", err)
	}
	if n == 0 {
		return store.ErrScheduleNotFound
	}
	return nil
}

// allSchedules reads every schedule of every tenant, sorted by id. An entry
// that cannot be decoded is logged and skipped rather than stopping every
// other schedule.
func (s *Store) allSchedules(ctx context.Context) ([]*store.Schedule, error) {
	raw, err := s.rdb.HGetAll(ctx, schedulesKey).Result()
	if err != nil {
		return nil, fmt.Errorf("read schedules: %w", err)
	}
	out := make([]*store.Schedule, 0, len(raw))
	for id, v := range raw {
		sc, err := decodeSchedule(v)
		if err != nil {
			s.log.ErrorContext(ctx, "skipping undecodable schedule", "schedule_id", id, "error", err)
			continue
		}
		out = append(out, sc)
	}
	slices.SortFunc(out, func(a, b *store.Schedule) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// ScheduleJobIDs returns the ids of tenant's jobs that carry the label
// schedule=<scheduleID>, oldest first. It reads the tenant's whole job
// index: meant for diagnostics and tests, not for a request path (clients
// list a schedule's jobs with ListJobs and a label filter).
func (s *Store) ScheduleJobIDs(ctx context.Context, tenant, scheduleID string) ([]string, error) {
	queues, err := s.queues(ctx, 0)
	if err != nil {
		return nil, err
	}
	pipe := s.rdb.Pipeline()
	idx := make([]*redis.ZSliceCmd, len(queues))
	for i, q := range queues {
		idx[i] = pipe.ZRangeWithScores(ctx, indexKey(q, tenant), 0, -1)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read job index: %w", err)
	}
	var entries []indexEntry
	for i, q := range queues {
		for _, z := range idx[i].Val() {
			id, _ := z.Member.(string)
			entries = append(entries, indexEntry{jobRef{q, id}, int64(z.Score)})
		}
	}
	slices.SortFunc(entries, func(a, b indexEntry) int { return cmp.Compare(a.score, b.score) })
	pipe = s.rdb.Pipeline()
	labels := make([]*redis.StringCmd, len(entries))
	for i, e := range entries {
		labels[i] = pipe.HGet(ctx, jobKey(e.ref.queue, e.ref.id), fLabels)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read job labels: %w", err)
	}
	var out []string
	for i, c := range labels {
		var l map[string]string
		if c.Val() == "" || json.Unmarshal([]byte(c.Val()), &l) != nil {
			continue
		}
		if l[store.ScheduleLabel] == scheduleID {
			out = append(out, entries[i].ref.id)
		}
	}
	return out, nil
}
