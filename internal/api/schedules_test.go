package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/redistest"
)

func TestScheduleCRUD(t *testing.T) {
	t.Parallel()
	b := setupOps(t, false)
	ctx := context.Background()

	code, created, _ := b.do(t, "POST", "/v1/schedules", `{"cron":"30 9 * * 1-5","timeZone":"America/New_York",
		"description":"weekday report","job":{"type":"report","payload":{"title":"daily","pages":3},
		"labels":{"team":"data"},"scheduleDelay":"2s","idempotencyKey":"ignored"}}`)
	require.Equal(t, http.StatusOK, code, "%v", created)
	require.Regexp(t, `^schedules/[0-9a-f-]{36}$`, created["name"])
	require.Equal(t, "America/New_York", created["timeZone"])
	require.Equal(t, "weekday report", created["description"])
	job := created["job"].(map[string]any)
	require.Equal(t, "report", job["type"])
	require.Equal(t, "default", job["queue"], "type defaults are applied to the template")
	require.NotEmpty(t, job["maxAttempts"])
	require.NotEmpty(t, job["timeout"])
	require.Equal(t, "2s", job["scheduleDelay"])
	require.Equal(t, map[string]any{"team": "data"}, job["labels"])
	require.Nil(t, job["idempotencyKey"])
	next, err := time.Parse(time.RFC3339, created["nextRunTime"].(string))
	require.NoError(t, err)
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)
	require.Equal(t, "09:30", next.In(ny).Format("15:04"))
	require.True(t, next.After(time.Now()))
	require.NotEmpty(t, created["createTime"])
	name := created["name"].(string)

	got, err := b.schedules.GetSchedule(ctx, &jobforgev1.GetScheduleRequest{Name: name})
	require.NoError(t, err)
	want := &jobforgev1.Schedule{}
	raw, err := json.Marshal(created)
	require.NoError(t, err)
	require.NoError(t, protojson.Unmarshal(raw, want))
	require.True(t, proto.Equal(want, got), "REST create and gRPC get agree:\n%v\n%v", want, got)

	second, err := b.schedules.CreateSchedule(ctx, &jobforgev1.CreateScheduleRequest{Schedule: &jobforgev1.Schedule{
		Cron: "@every 1h", Job: &jobforgev1.Job{Type: "simulate"},
	}})
	require.NoError(t, err)
	require.Equal(t, "UTC", second.GetTimeZone())

	code, list, _ := b.do(t, "GET", "/v1/schedules", "")
	require.Equal(t, http.StatusOK, code)
	var names []any
	for _, s := range list["schedules"].([]any) {
		names = append(names, s.(map[string]any)["name"])
	}
	require.Equal(t, []any{name, second.GetName()}, names, "sorted by name (ids are time-ordered)")

	_, err = b.schedules.DeleteSchedule(ctx, &jobforgev1.DeleteScheduleRequest{Name: name})
	require.NoError(t, err)
	code, body, _ := b.do(t, "DELETE", "/v1/"+second.GetName(), "")
	require.Equal(t, http.StatusOK, code, "%v", body)

	for _, n := range []string{name, second.GetName()} {
		code, body, _ := b.do(t, "GET", "/v1/"+n, "")
		require.Equal(t, http.StatusNotFound, code)
		require.Contains(t, body["message"], "not found")
		require.Contains(t, fmt.Sprint(body["details"]), "SCHEDULE_NOT_FOUND")
		_, err := b.schedules.DeleteSchedule(ctx, &jobforgev1.DeleteScheduleRequest{Name: n})
		require.Equal(t, codes.NotFound, status.Code(err))
	}
	resp, err := b.schedules.ListSchedules(ctx, &jobforgev1.ListSchedulesRequest{})
	require.NoError(t, err)
	require.Empty(t, resp.GetSchedules())
}

func TestScheduleValidation(t *testing.T) {
	t.Parallel()
	b := setupOps(t, false)
	ctx := context.Background()
	tests := []struct {
		name      string
		schedule  string // JSON of the Schedule
		wantField string
		wantText  string
	}{
		{"missing cron", `{"job":{"type":"simulate"}}`, "schedule.cron", "at least 1 characters"},
		{"bad cron", `{"cron":"every day","job":{"type":"simulate"}}`, "schedule.cron", "not a valid cron spec"},
		{"cron out of range", `{"cron":"0 25 * * *","job":{"type":"simulate"}}`, "schedule.cron", "not a valid cron spec"},
		{"every below 1s", `{"cron":"@every 100ms","job":{"type":"simulate"}}`, "schedule.cron", "at least 1s"},
		{"never matches", `{"cron":"0 0 31 4 *","job":{"type":"simulate"}}`, "schedule.cron", "never matches"},
		{"unknown time zone", `{"cron":"@daily","timeZone":"Europe/Atlantis","job":{"type":"simulate"}}`, "schedule.time_zone", "unknown time zone"},
		{"missing job", `{"cron":"@daily"}`, "schedule.job", "required"},
		{"unknown job type", `{"cron":"@daily","job":{"type":"nope"}}`, "schedule.job.type", `unknown job type "nope"`},
		{"invalid payload", `{"cron":"@daily","job":{"type":"primes","payload":{"limit":"lots"}}}`, "schedule.job.payload.limit", "must be an integer"},
		{"unknown queue", `{"cron":"@daily","job":{"type":"simulate","queue":"nowhere"}}`, "schedule.job.queue", `unknown queue "nowhere"`},
		{"too many attempts", `{"cron":"@daily","job":{"type":"simulate","maxAttempts":1000}}`, "schedule.job.max_attempts", "less than or equal to 100"},
		{"fixed schedule time", `{"cron":"@daily","job":{"type":"simulate","scheduleTime":"2030-01-01T00:00:00Z"}}`, "schedule.job.schedule_time", "does not repeat"},
		{"reserved label", `{"cron":"@daily","job":{"type":"simulate","labels":{"schedule":"x"}}}`, "schedule.job.labels", "reserved"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/rest", func(t *testing.T) {
			t.Parallel()
			code, body, _ := b.do(t, "POST", "/v1/schedules", tt.schedule)
			require.Equal(t, http.StatusBadRequest, code, "%v", body)
			require.Contains(t, body["message"], tt.wantText)
			var fields []string
			for _, d := range body["details"].([]any) {
				if d := d.(map[string]any); d["@type"] == "type.googleapis.com/google.rpc.BadRequest" {
					for _, v := range d["fieldViolations"].([]any) {
						fields = append(fields, v.(map[string]any)["field"].(string))
					}
				}
			}
			require.NotEmpty(t, fields)
			require.Equal(t, tt.wantField, fields[0])
		})
		t.Run(tt.name+"/grpc", func(t *testing.T) {
			t.Parallel()
			sc := &jobforgev1.Schedule{}
			require.NoError(t, protojson.Unmarshal([]byte(tt.schedule), sc))
			_, err := b.schedules.CreateSchedule(ctx, &jobforgev1.CreateScheduleRequest{Schedule: sc})
			st := status.Convert(err)
			require.Equal(t, codes.InvalidArgument, st.Code(), "%v", err)
			require.Contains(t, st.Message(), tt.wantText)
			var fields []string
			for _, d := range st.Details() {
				if br, ok := d.(*errdetails.BadRequest); ok {
					for _, v := range br.GetFieldViolations() {
						fields = append(fields, v.GetField())
					}
				}
			}
			require.NotEmpty(t, fields)
			require.Equal(t, tt.wantField, fields[0])
		})
	}

	resp, err := b.schedules.ListSchedules(ctx, &jobforgev1.ListSchedulesRequest{})
	require.NoError(t, err)
	require.Empty(t, resp.GetSchedules(), "nothing invalid was stored")
}

// A schedule's jobs run, carry the schedule label and can be listed by it;
// after the delete no further job appears.
func TestScheduleCreatesJobs(t *testing.T) {
	t.Parallel()
	b := setupOps(t, true)
	ctx := context.Background()
	sc, err := b.schedules.CreateSchedule(ctx, &jobforgev1.CreateScheduleRequest{Schedule: &jobforgev1.Schedule{
		Cron: "@every 1s", Job: &jobforgev1.Job{Type: "simulate", Labels: map[string]string{"team": "ops"}},
	}})
	require.NoError(t, err)
	id := sc.GetName()[len("schedules/"):]
	filter := url.QueryEscape(fmt.Sprintf(`labels.schedule=%q`, id))
	list := func() []any {
		code, body, _ := b.do(t, "GET", "/v1/jobs?filter="+filter, "")
		require.Equal(t, http.StatusOK, code, "%v", body)
		jobs, _ := body["jobs"].([]any)
		return jobs
	}
	redistest.Eventually(t, 30*time.Second, func() bool {
		for _, j := range list() {
			if j.(map[string]any)["state"] == "SUCCEEDED" {
				return true
			}
		}
		return false
	}, "a scheduled job ran")
	_, err = b.schedules.DeleteSchedule(ctx, &jobforgev1.DeleteScheduleRequest{Name: sc.GetName()})
	require.NoError(t, err)
	deleted := time.Now()

	jobs := list()
	for _, j := range jobs {
		j := j.(map[string]any)
		require.Equal(t, map[string]any{"team": "ops", "schedule": id}, j["labels"])
		require.Equal(t, "simulate", j["type"])
	}
	ids, err := b.store.ScheduleJobIDs(ctx, "default", id)
	require.NoError(t, err)
	require.Len(t, ids, len(jobs), "the label filter and the store agree")

	// Two more periods pass: at most a job of a period begun before the
	// delete may still appear, nothing later.
	redistest.Eventually(t, 30*time.Second, func() bool { return time.Since(deleted) > 2500*time.Millisecond }, "two periods pass")
	after := list()
	for _, j := range after {
		created, err := time.Parse(time.RFC3339Nano, j.(map[string]any)["createTime"].(string))
		require.NoError(t, err)
		require.True(t, created.Before(deleted.Add(time.Second)), "job %v created after the delete", j)
	}
}
