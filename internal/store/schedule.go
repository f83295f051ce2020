package store

import (
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // time zones must resolve the same on every replica, with or without a system zoneinfo

	"github.com/robfig/cron/v3"
)

// ScheduleLabel is the label every job created by a schedule carries; its
// value is the schedule id.
const ScheduleLabel = "schedule"

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
	if s.Next(time.Now(), time.Now()).IsZero() {
		return nil, &SpecError{"cron", "never matches (no matching time within five years)"}
	}
	return s, nil
}

// Next returns the first period start strictly after t, or zero if there is
// none within five years. anchor is the schedule's creation time; "@every"
// periods are anchor (to the second) plus whole intervals.
func (s *Spec) Next(anchor, t time.Time) time.Time {
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

// Latest returns the most recent period start p with anchor < p <= now and
// p >= now-window: the one period a scheduler that was down may still
// create. Older missed periods are skipped, never created in a burst.
func (s *Spec) Latest(anchor, now time.Time, window time.Duration) (time.Time, bool) {
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
	for p := s.Next(anchor, from); !p.IsZero() && !p.After(now); p = s.Next(anchor, p) {
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

	spec *Spec // set by Parse
}

// NextRun is the first period start after t, or zero if there is none.
func (sc *Schedule) NextRun(t time.Time) time.Time {
	spec := sc.parsed()
	if spec == nil {
		return time.Time{}
	}
	if t.Before(sc.CreateTime) {
		t = sc.CreateTime
	}
	return spec.Next(sc.CreateTime, t)
}

// LatestRun is the most recent period start a scheduler may still create
// at now (see Spec.Latest), if any.
func (sc *Schedule) LatestRun(now time.Time, window time.Duration) (time.Time, bool) {
	spec := sc.parsed()
	if spec == nil {
		return time.Time{}, false
	}
	return spec.Latest(sc.CreateTime, now, window)
}

// Parse checks Cron and TimeZone, sets TimeZone to the zone's canonical
// name ("UTC" for "") and keeps the parsed spec, so that NextRun and
// LatestRun need not parse it again. Errors are *SpecError.
func (sc *Schedule) Parse() error {
	spec, err := ParseSpec(sc.Cron, sc.TimeZone)
	if err != nil {
		return err
	}
	sc.TimeZone, sc.spec = spec.loc.String(), spec
	return nil
}

// parsed is the spec kept by Parse, or parsed now for a Schedule that was
// built without it; nil if Cron or TimeZone is invalid.
func (sc *Schedule) parsed() *Spec {
	if sc.spec != nil {
		return sc.spec
	}
	spec, err := ParseSpec(sc.Cron, sc.TimeZone)
	if err != nil {
		return nil
	}
	return spec
}
