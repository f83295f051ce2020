package builtin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/jobs"
	"github.com/jobforge/jobforge/jobs/builtin"
	"github.com/jobforge/jobforge/jobs/jobstest"
)

func TestBuiltinExamplesAreValid(t *testing.T) {
	t.Parallel()
	types := builtin.Types()
	require.GreaterOrEqual(t, len(types), 3)
	reg, err := jobs.NewRegistry(types...)
	require.NoError(t, err)
	for _, typ := range reg.Types() {
		t.Run(typ.Name(), func(t *testing.T) {
			t.Parallel()
			require.NoError(t, typ.Validate(typ.Example()), "example payload must validate")
			require.NotEmpty(t, typ.Description())
			require.Positive(t, typ.Timeout())
			require.Positive(t, typ.MaxAttempts())
			var schema map[string]any
			require.NoError(t, json.Unmarshal(typ.Schema(), &schema))
			require.Equal(t, "object", schema["type"])
		})
	}
}

func TestRegistryRejectsDuplicates(t *testing.T) {
	t.Parallel()
	_, err := jobs.NewRegistry(builtin.Primes, builtin.Primes)
	require.ErrorContains(t, err, `duplicate job type "primes"`)
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		typ       *jobs.Type
		payload   string
		wantField string // "" with wantOK
		wantOK    bool
	}{
		{"primes ok", builtin.Primes, `{"limit": 100}`, "", true},
		{"primes missing limit", builtin.Primes, `{}`, "limit", false},
		{"primes empty payload", builtin.Primes, ``, "limit", false},
		{"primes limit too big", builtin.Primes, `{"limit": 3000000000}`, "limit", false},
		{"primes limit wrong type", builtin.Primes, `{"limit": "many"}`, "limit", false},
		{"primes limit fractional", builtin.Primes, `{"limit": 1.5}`, "limit", false},
		{"primes unknown field", builtin.Primes, `{"limit": 10, "extra": 1}`, "extra", false},
		{"primes not an object", builtin.Primes, `[1,2]`, "", false},
		{"primes malformed", builtin.Primes, `{"limit": `, "", false},
		{"primes trailing data", builtin.Primes, `{"limit": 10} {}`, "", false},
		{"report ok", builtin.Report, `{"pages": 3, "page_millis": 0}`, "", true},
		{"report zero pages", builtin.Report, `{"pages": 0}`, "pages", false},
		{"report negative delay", builtin.Report, `{"pages": 1, "page_millis": -1}`, "page_millis", false},
		{"simulate default", builtin.Simulate, `{}`, "", true},
		{"simulate bad outcome", builtin.Simulate, `{"outcome": "explode"}`, "outcome", false},
		{"simulate fail_times negative", builtin.Simulate, `{"fail_times": -2}`, "fail_times", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.typ.Validate([]byte(tt.payload))
			if tt.wantOK {
				require.NoError(t, err)
				return
			}
			var ve *jobs.ValidationError
			require.ErrorAs(t, err, &ve)
			require.NotEmpty(t, ve.Violations)
			require.Equal(t, tt.wantField, ve.Violations[0].Field, "violations: %+v", ve.Violations)
			require.NotEmpty(t, ve.Violations[0].Description)
		})
	}
}

func TestCountPrimes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		limit, count, largest int64
	}{
		{2, 0, 0},
		{3, 1, 2},
		{10, 4, 7},
		{100, 25, 97},
		{1_000_000, 78_498, 999_983},
		{10_000_000, 664_579, 9_999_991},
	}
	for _, tt := range tests {
		count, largest, err := builtin.CountPrimes(context.Background(), tt.limit, nil)
		require.NoError(t, err)
		require.Equal(t, tt.count, count, "primes below %d", tt.limit)
		require.Equal(t, tt.largest, largest, "largest prime below %d", tt.limit)
	}
}

func TestCountPrimesHonoursCancellation(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := builtin.CountPrimes(ctx, 1_000_000_000, nil)
	require.ErrorIs(t, err, context.Canceled)
}

func TestPrimesReportsProgress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		limit  int64
		result string
	}{
		{"one segment", 100, `{"limit":100,"count":25,"largest":97}`},
		{"the example", 1_000_000, `{"limit":1000000,"count":78498,"largest":999983}`},
		{"many segments", 5_000_000, `{"limit":5000000,"count":348513,"largest":4999999}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := jobstest.Run(context.Background(), builtin.Primes, fmt.Sprintf(`{"limit": %d}`, tt.limit), 1)
			require.NoError(t, err)
			require.JSONEq(t, tt.result, string(out.Result))
			require.NotEmpty(t, out.Progress)
			last := len(out.Progress) - 1
			// The job ends at 100 %, so its last message must say the
			// whole range is done.
			require.Equal(t, jobstest.Update{Percent: 100, Message: fmt.Sprintf("sieved %d of %d", tt.limit, tt.limit)}, out.Progress[last])
			for i, u := range out.Progress[:last] {
				require.True(t, u.Percent >= 0 && u.Percent < 100, "update %d: %+v", i, u)
				if i > 0 {
					require.GreaterOrEqual(t, u.Percent, out.Progress[i-1].Percent)
				}
			}
		})
	}
}

func TestReport(t *testing.T) {
	t.Parallel()
	out, err := jobstest.Run(context.Background(), builtin.Report, `{"title":"t","pages":4,"page_millis":0}`, 1)
	require.NoError(t, err)
	require.JSONEq(t, `{"title":"t","pages":4,"checksum":30}`, string(out.Result))
	require.Equal(t, []jobstest.Update{
		{Percent: 25, Message: "page 1 of 4"}, {Percent: 50, Message: "page 2 of 4"},
		{Percent: 75, Message: "page 3 of 4"}, {Percent: 100, Message: "page 4 of 4"},
	}, out.Progress)
}

func TestReportStopsWhenCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := jobstest.Run(ctx, builtin.Report, `{"pages":1000,"page_millis":1000}`, 1)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestSimulate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		payload       string
		attempt       int
		wantErr       string
		wantPermanent bool
		wantResult    string
	}{
		{"succeed echoes", `{"result":{"a":1}}`, 1, "", false, `{"attempt":1,"echo":{"a":1}}`},
		{"fail", `{"outcome":"fail","message":"boom"}`, 1, "boom", false, ""},
		{"fail permanent", `{"outcome":"fail","message":"bad input","permanent":true}`, 1, "bad input", true, ""},
		{"planned failure", `{"fail_times":2}`, 2, "simulated failure (attempt 2 of 2 planned failures)", false, ""},
		{"after planned failures", `{"fail_times":2}`, 3, "", false, `{"attempt":3}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := jobstest.Run(context.Background(), builtin.Simulate, tt.payload, tt.attempt)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				require.Equal(t, tt.wantPermanent, jobs.IsPermanent(err))
				return
			}
			require.NoError(t, err)
			require.JSONEq(t, tt.wantResult, string(out.Result))
		})
	}
}

func TestRunWithUndecodablePayloadIsPermanent(t *testing.T) {
	t.Parallel()
	_, err := jobstest.Run(context.Background(), builtin.Primes, `{"limit":"x"}`, 1)
	require.True(t, jobs.IsPermanent(err))
	var ve *jobs.ValidationError
	require.True(t, errors.As(err, &ve))
}

func TestPermanent(t *testing.T) {
	t.Parallel()
	require.NoError(t, jobs.Permanent(nil))
	base := errors.New("x")
	err := jobs.Permanent(base)
	require.ErrorIs(t, err, base)
	require.True(t, jobs.IsPermanent(err))
	require.False(t, jobs.IsPermanent(base))
}
