package store

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err)
	return v
}

func TestParseSpec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, cron, tz string
		wantField      string // "" = valid
		wantText       string
	}{
		{name: "five fields", cron: "*/5 * * * *"},
		{name: "descriptor", cron: "@daily", tz: "America/New_York"},
		{name: "every", cron: "@every 1m30s"},
		{name: "every one second", cron: "@every 1s"},
		{name: "empty", cron: " ", wantField: "cron", wantText: "must not be empty"},
		{name: "every below one second", cron: "@every 500ms", wantField: "cron", wantText: "at least 1s"},
		{name: "every fractional", cron: "@every 1.5s", wantField: "cron", wantText: "whole number of seconds"},
		{name: "every without duration", cron: "@every", wantField: "cron", wantText: "needs a duration"},
		{name: "out of range", cron: "61 * * * *", wantField: "cron", wantText: "not a valid cron spec"},
		{name: "seconds field", cron: "* * * * * *", wantField: "cron", wantText: "not a valid cron spec"},
		{name: "unknown descriptor", cron: "@fortnightly", wantField: "cron", wantText: "not a valid cron spec"},
		{name: "time zone in spec", cron: "CRON_TZ=UTC 0 * * * *", wantField: "cron", wantText: "time_zone"},
		{name: "never matches", cron: "0 0 30 2 *", wantField: "cron", wantText: "never matches"},
		{name: "unknown time zone", cron: "@hourly", tz: "Mars/Olympus_Mons", wantField: "time_zone", wantText: "unknown time zone"},
		{name: "local time zone", cron: "@hourly", tz: "Local", wantField: "time_zone", wantText: "IANA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseSpec(tt.cron, tt.tz)
			if tt.wantField == "" {
				require.NoError(t, err)
				return
			}
			var se *SpecError
			require.ErrorAs(t, err, &se)
			require.Equal(t, tt.wantField, se.Field)
			require.Contains(t, se.Msg, tt.wantText)
		})
	}
}

func TestSpecPeriods(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, cron, tz string
		anchor, now    string
		window         time.Duration
		wantLatest     string // "" = no period to create
		wantNext       string
	}{
		{
			name: "cron in a time zone (winter)", cron: "0 9 * * *", tz: "Europe/Berlin",
			anchor: "2025-01-01T00:00:00Z", now: "2025-01-15T08:00:00.4Z", window: 5 * time.Minute,
			wantLatest: "2025-01-15T08:00:00Z", wantNext: "2025-01-16T08:00:00Z",
		},
		{
			name: "cron in a time zone (summer)", cron: "0 9 * * *", tz: "Europe/Berlin",
			anchor: "2025-07-01T00:00:00Z", now: "2025-07-15T07:00:01Z", window: 5 * time.Minute,
			wantLatest: "2025-07-15T07:00:00Z", wantNext: "2025-07-16T07:00:00Z",
		},
		{
			name: "missed period older than the catch-up window is skipped", cron: "0 9 * * *", tz: "Europe/Berlin",
			anchor: "2025-01-01T00:00:00Z", now: "2025-01-15T08:10:00Z", window: 5 * time.Minute,
			wantNext: "2025-01-16T08:00:00Z",
		},
		{
			name: "within a longer window only the latest missed period", cron: "*/5 * * * *",
			anchor: "2025-01-01T00:00:00Z", now: "2025-01-15T08:17:00Z", window: time.Hour,
			wantLatest: "2025-01-15T08:15:00Z", wantNext: "2025-01-15T08:20:00Z",
		},
		{
			name: "no period before the schedule existed", cron: "*/5 * * * *",
			anchor: "2025-01-15T08:15:30Z", now: "2025-01-15T08:17:00Z", window: time.Hour,
			wantNext: "2025-01-15T08:20:00Z",
		},
		{
			name: "descriptor", cron: "@hourly", tz: "Asia/Kolkata",
			anchor: "2025-01-01T00:00:00Z", now: "2025-01-15T08:31:00Z", window: 5 * time.Minute,
			wantLatest: "2025-01-15T08:30:00Z", wantNext: "2025-01-15T09:30:00Z",
		},
		{
			name: "@every counts from the schedule's creation", cron: "@every 10s",
			anchor: "2025-01-15T12:00:03.7Z", now: "2025-01-15T12:00:35Z", window: 5 * time.Minute,
			wantLatest: "2025-01-15T12:00:33Z", wantNext: "2025-01-15T12:00:43Z",
		},
		{
			name: "@every before its first period", cron: "@every 10s",
			anchor: "2025-01-15T12:00:03.7Z", now: "2025-01-15T12:00:12.9Z", window: 5 * time.Minute,
			wantNext: "2025-01-15T12:00:13Z",
		},
		{
			name: "@every after a long outage: one period, the latest", cron: "@every 10s",
			anchor: "2025-01-15T12:00:00Z", now: "2025-01-15T14:00:05Z", window: 5 * time.Minute,
			wantLatest: "2025-01-15T14:00:00Z", wantNext: "2025-01-15T14:00:10Z",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec, err := ParseSpec(tt.cron, tt.tz)
			require.NoError(t, err)
			anchor, now := mustTime(t, tt.anchor), mustTime(t, tt.now)
			p, ok := spec.Latest(anchor, now, tt.window)
			if tt.wantLatest == "" {
				require.False(t, ok, "latest = %s", p)
			} else {
				require.True(t, ok)
				require.Equal(t, mustTime(t, tt.wantLatest), p)
			}
			require.Equal(t, mustTime(t, tt.wantNext), spec.Next(anchor, now))
		})
	}
}
