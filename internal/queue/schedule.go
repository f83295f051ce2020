package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // time zones must resolve the same on every replica, with or without a system zoneinfo

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/robfig/cron/v3"
)

// ErrScheduleNotFound is returned for a schedule that does not exist for
// the caller.
var ErrScheduleNotFound = errors.New("schedule not found")

// ScheduleLabel is the label every job created by a schedule carries; its
// value is the schedule id.
const ScheduleLabel = "schedule"

// schedulesKey is a hash of every schedule: id → JSON. Schedules are few
// and every scheduler reads all of them on each tick, so one key (one
// Redis Cluster slot) serves best.
const schedulesKey = keyPrefix + "schedules"

// minEvery is the shortest "@every" interval.
const minEvery = time.Second

// SpecError says which input of a schedule is invalid and why.
type SpecError struct {
	Field string // "cron" or "time_zone"
	Msg   string
}

func (e *SpecError) Error() string { return e.Field + ": " + e.Msg }

// Spec is a parsed cron spec evaluated in a time zone.
type Spec struct {
	loc   *time.Location
	cron  cron.Schedule // nil for @every
	every time.Duration
}

// cronParser accepts the standard five fields and descriptors (@hourly,
// @daily, @every 1m, ...).
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSpec parses a standard five-field cron spec or a descriptor, to be
// evaluated in the IANA time zone tz ("" means UTC). "@every" intervals are
// whole seconds, at least one; their periods are counted from the
// schedule's creation, not from whenever a scheduler happens to look.
// Errors are *SpecError.
func ParseSpec(spec, tz string) (*Spec, error) {
	s := &Spec{loc: time.UTC}
	if tz != "" {
		if tz == "Local" {
			return nil, &SpecError{"time_zone", `"Local" differs between machines; name an IANA time zone such as "Europe/Berlin" or "UTC"`}
		}
		loc, err := time.LoadLocation(tz)
		if err != nil {
			return nil, &SpecError{"time_zone", fmt.Sprintf("unknown time zone %q; use an IANA name such as \"America/New_York\" or \"UTC\"", tz)}
		}
		s.loc = loc
	}
	spec = strings.TrimSpace(spec)
	switch {
	case spec == "":
		return nil, &SpecError{"cron", "must not be empty"}
	case strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ="):
		return nil, &SpecError{"cron", "set the time zone in time_zone, not in the spec"}
	case strings.HasPrefix(spec, "@every"):
		d, err := time.ParseDuration(strings.TrimSpace(strings.TrimPrefix(spec, "@every")))
		switch {
		case err != nil:
			return nil, &SpecError{"cron", fmt.Sprintf(`"@every" needs a duration such as "@every 30s" or "@every 1h30m": %v`, err)}
		case d < minEvery:
			return nil, &SpecError{"cron", fmt.Sprintf(`"@every" must be at least %s, got %s`, minEvery, d)}
		case d%time.Second != 0:
			return nil, &SpecError{"cron", fmt.Sprintf(`"@every" must be a whole number of seconds, got %s`, d)}
		}
		s.every = d
		return s, nil
	}
	c, err := cronParser.Parse(spec)
	if err != nil {
		return nil, &SpecError{"cron", fmt.Sprintf("not a valid cron spec (five fields: minute hour day-of-month month day-of-week, or a descriptor such as @hourly or @every 5m): %v", err)}
	}
	s.cron = c
	if s.next(time.Now(), time.Now()).IsZero() {
		return nil, &SpecError{"cron", "never matches (no matching time within five years)"}
	}
	return s, nil
}

// next returns the first period start strictly after t, or zero if there is
// none within five years. anchor is the schedule's creation time; "@every"
// periods are anchor (to the second) plus whole intervals.
func (s *Spec) next(anchor, t time.Time) time.Time {
	if s.every > 0 {
		a := anchor.Truncate(time.Second)
		k := int64(1)
		if t.After(a) {
			k = int64(t.Sub(a)/s.every) + 1
		}
		return a.Add(time.Duration(k) * s.every).UTC()
	}
	n := s.cron.Next(t.In(s.loc))
	if n.IsZero() {
		return n
	}
	return n.UTC()
}

// latest returns the most recent period start p with anchor < p <= now and
// p >= now-window: the one period a scheduler that was down may still
// create. Older missed periods are skipped, never created in a burst.
func (s *Spec) latest(anchor, now time.Time, window time.Duration) (time.Time, bool) {
	oldest := now.Add(-window)
	if s.every > 0 {
		a := anchor.Truncate(time.Second)
		if now.Before(a) {
			return time.Time{}, false
		}
		k := int64(now.Sub(a) / s.every)
		p := a.Add(time.Duration(k) * s.every)
		if k < 1 || p.Before(oldest) || !p.After(anchor) {
			return time.Time{}, false
		}
		return p.UTC(), true
	}
	from := anchor
	if oldest.After(from) {
		from = oldest.Add(-time.Nanosecond)
	}
	var last time.Time
	for p := s.next(anchor, from); !p.IsZero() && !p.After(now); p = s.next(anchor, p) {
		last = p
	}
	return last, !last.IsZero()
}

// Schedule creates a job from Job at every period start of its cron spec.
type Schedule struct {
	ID          string
	Tenant      string
	Cron        string
	TimeZone    string // IANA name; "UTC" by default
	Description string
	// Job is the template of the jobs to create. Its ID, idempotency key and
	// schedule time are ignored: each job gets a deterministic id from the
	// schedule and period, and the label schedule=<id>.
	Job NewJob
	// Delay puts each job's schedule time this long after its period start.
	Delay      time.Duration
	CreateTime time.Time

	spec *Spec
}

// NextRun is the first period start after t, or zero if there is none.
func (sc *Schedule) NextRun(t time.Time) time.Time {
	if sc.spec == nil {
		return time.Time{}
	}
	if t.Before(sc.CreateTime) {
		t = sc.CreateTime
	}
	return sc.spec.next(sc.CreateTime, t)
}

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

type storedRetry struct {
	InitialMS  int64   `json:"initial_ms"`
	MaxMS      int64   `json:"max_ms"`
	Multiplier float64 `json:"multiplier"`
	Jitter     float64 `json:"jitter"`
}

func encodeSchedule(sc *Schedule) ([]byte, error) {
	st := storedSchedule{
		ID: sc.ID, Tenant: sc.Tenant, Cron: sc.Cron, TimeZone: sc.TimeZone, Description: sc.Description,
		CreateUS: sc.CreateTime.UnixMicro(), DelayMS: sc.Delay.Milliseconds(),
		Type: sc.Job.Type, Queue: sc.Job.Queue, Payload: sc.Job.Payload, Labels: sc.Job.Labels,
		MaxAttempts: sc.Job.MaxAttempts, TimeoutMS: sc.Job.Timeout.Milliseconds(),
	}
	if p := sc.Job.RetryPolicy; !p.IsZero() {
		st.RetryPolicy = &storedRetry{InitialMS: p.Initial.Milliseconds(), MaxMS: p.Max.Milliseconds(), Multiplier: p.Multiplier, Jitter: p.Jitter}
	}
	return json.Marshal(st)
}

func decodeSchedule(raw string) (*Schedule, error) {
	var st storedSchedule
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return nil, fmt.Errorf("decode schedule: %w", err)
	}
	spec, err := ParseSpec(st.Cron, st.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("schedule %s: %w", st.ID, err)
	}
	sc := &Schedule{
		ID: st.ID, Tenant: st.Tenant, Cron: st.Cron, TimeZone: st.TimeZone, Description: st.Description,
		CreateTime: time.UnixMicro(st.CreateUS).UTC(), Delay: time.Duration(st.DelayMS) * time.Millisecond,
		Job: NewJob{
			Tenant: st.Tenant, Type: st.Type, Queue: st.Queue, Payload: st.Payload, Labels: st.Labels,
			MaxAttempts: st.MaxAttempts, Timeout: time.Duration(st.TimeoutMS) * time.Millisecond,
		},
		spec: spec,
	}
	if r := st.RetryPolicy; r != nil {
		sc.Job.RetryPolicy = RetryPolicy{
			Initial: time.Duration(r.InitialMS) * time.Millisecond, Max: time.Duration(r.MaxMS) * time.Millisecond,
			Multiplier: r.Multiplier, Jitter: r.Jitter,
		}
	}
	return sc, nil
}

// CreateSchedule stores a new schedule and returns it with its id and
// create time. The first job is created at the first period start after
// the create time. The job template must be validated by the caller.
func (s *Store) CreateSchedule(ctx context.Context, sc Schedule) (*Schedule, error) {
	spec, err := ParseSpec(sc.Cron, sc.TimeZone)
	if err != nil {
		return nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("new schedule id: %w", err)
	}
	sc.ID = id.String()
	sc.TimeZone = spec.loc.String()
	sc.CreateTime = s.now().UTC().Truncate(time.Microsecond)
	sc.Job.Labels = maps.Clone(sc.Job.Labels)
	sc.spec = spec
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
func (s *Store) GetSchedule(ctx context.Context, tenant, id string) (*Schedule, error) {
	raw, err := s.rdb.HGet(ctx, schedulesKey, id).Result()
	if errors.Is(err, redis.Nil) {
		return nil, ErrScheduleNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read schedule: %w", err)
	}
	sc, err := decodeSchedule(raw)
	if err != nil {
		return nil, err
	}
	if sc.Tenant != tenant {
		return nil, ErrScheduleNotFound
	}
	return sc, nil
}

// ListSchedules returns every schedule of tenant, oldest first (ids are
// time-ordered).
func (s *Store) ListSchedules(ctx context.Context, tenant string) ([]*Schedule, error) {
	all, err := s.allSchedules(ctx)
	if err != nil {
		return nil, err
	}
	out := slices.DeleteFunc(all, func(sc *Schedule) bool { return sc.Tenant != tenant })
	return out, nil
}

// DeleteSchedule removes a schedule: no scheduler creates a job for a
// period starting after this returns (schedulers read the clock before the
// schedules, so only clock skew between machines could shift this). Jobs
// already created are kept.
func (s *Store) DeleteSchedule(ctx context.Context, tenant, id string) error {
	if _, err := s.GetSchedule(ctx, tenant, id); err != nil {
		return err
	}
	n, err := s.rdb.HDel(ctx, schedulesKey, id).Result()
	if err != nil {
		return fmt.Errorf("delete schedule: %w", err)
	}
	if n == 0 {
		return ErrScheduleNotFound
	}
	return nil
}

// allSchedules reads every schedule of every tenant, sorted by id. An entry
// that cannot be decoded is logged and skipped rather than stopping every
// other schedule.
func (s *Store) allSchedules(ctx context.Context) ([]*Schedule, error) {
	raw, err := s.rdb.HGetAll(ctx, schedulesKey).Result()
	if err != nil {
		return nil, fmt.Errorf("read schedules: %w", err)
	}
	out := make([]*Schedule, 0, len(raw))
	for id, v := range raw {
		sc, err := decodeSchedule(v)
		if err != nil {
			s.log.ErrorContext(ctx, "skipping undecodable schedule", "schedule_id", id, "error", err)
			continue
		}
		out = append(out, sc)
	}
	slices.SortFunc(out, func(a, b *Schedule) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// ScheduleJobIDs returns the ids of tenant's jobs that carry the label
// schedule=<scheduleID>, oldest first. It reads the tenant's whole job
// index: meant for diagnostics and tests, not for a request path (clients
// list a schedule's jobs with ListJobs and a label filter).
func (s *Store) ScheduleJobIDs(ctx context.Context, tenant, scheduleID string) ([]string, error) {
	ids, err := s.rdb.ZRange(ctx, indexKey(tenant), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("read job index: %w", err)
	}
	pipe := s.rdb.Pipeline()
	labels := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		labels[i] = pipe.HGet(ctx, jobKey(id), fLabels)
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
		if l[ScheduleLabel] == scheduleID {
			out = append(out, ids[i])
		}
	}
	return out, nil
}
