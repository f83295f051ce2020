package store

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// RetryPolicy is a job's backoff between attempts. Zero fields take the
// defaults: 1 s initial, ×2, at most 10 min, 20 % jitter. Durations are
// kept to the millisecond.
type RetryPolicy struct {
	Initial    time.Duration
	Max        time.Duration
	Multiplier float64
	Jitter     float64
}

// IsZero reports whether every field takes its default.
func (p RetryPolicy) IsZero() bool { return p == RetryPolicy{} }

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Initial <= 0 {
		p.Initial = time.Second
	}
	if p.Max <= 0 {
		p.Max = 10 * time.Minute
	}
	if p.Multiplier <= 0 {
		p.Multiplier = 2
	}
	if p.Jitter <= 0 {
		p.Jitter = 0.2 // zero means "default"; use a tiny value for none
	}
	return p
}

// Delay returns the backoff before the next attempt after n failed
// attempts (n ≥ 1), with jitter drawn from rnd in [0,1).
func (p RetryPolicy) Delay(n int, rnd float64) time.Duration {
	p = p.withDefaults()
	d := float64(p.Initial) * math.Pow(p.Multiplier, float64(max(n-1, 0)))
	d = min(d, float64(p.Max))
	d *= 1 + p.Jitter*(2*rnd-1)
	return max(time.Duration(d), time.Millisecond)
}

// String is the policy's one text form, "initial_ms,max_ms,multiplier,jitter"
// (e.g. "1000,60000,2,0.1"): compact enough for a record field or a task
// header, and the form every stored encoding uses.
func (p RetryPolicy) String() string {
	return fmt.Sprintf("%d,%d,%g,%g", p.Initial.Milliseconds(), p.Max.Milliseconds(), p.Multiplier, p.Jitter)
}

// MarshalText returns String's form.
func (p RetryPolicy) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText parses String's form.
func (p *RetryPolicy) UnmarshalText(b []byte) error {
	v, err := ParseRetryPolicy(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// ParseRetryPolicy parses String's form.
func ParseRetryPolicy(s string) (RetryPolicy, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return RetryPolicy{}, fmt.Errorf("malformed retry policy %q", s)
	}
	initial, err1 := strconv.ParseInt(parts[0], 10, 64)
	maxMS, err2 := strconv.ParseInt(parts[1], 10, 64)
	mult, err3 := strconv.ParseFloat(parts[2], 64)
	jitter, err4 := strconv.ParseFloat(parts[3], 64)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return RetryPolicy{}, fmt.Errorf("malformed retry policy %q: %w", s, err)
	}
	return RetryPolicy{
		Initial:    time.Duration(initial) * time.Millisecond,
		Max:        time.Duration(maxMS) * time.Millisecond,
		Multiplier: mult,
		Jitter:     jitter,
	}, nil
}
