package system_test

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/proctest"
	"github.com/jobforge/jobforge/internal/queue"
	"github.com/jobforge/jobforge/internal/redistest"
)

// count returns how many log lines have msg == msg and key == value.
func count(p *proctest.Process, msg, key, value string) int {
	n := 0
	for _, m := range p.Lines() {
		if m["msg"] == msg && m[key] == value {
			n++
		}
	}
	return n
}

// Two worker processes both run the scheduler against one Redis: each
// period of a schedule yields exactly one job, and none once it is deleted.
func TestScheduleExactlyOncePerPeriodAcrossReplicas(t *testing.T) {
	t.Parallel()
	url := redistest.NewDB(t)
	c := newCluster(t, url)
	_, workerBin := binaries(t)
	second := proctest.Start(t, workerBin, []string{"REDIS_URL=" + url, "JOBFORGE_LOG_LEVEL=debug"}, "worker started",
		"-admin-addr", "127.0.0.1:0", "-poll-interval", "5ms", "-delayed-check-interval", "100ms")
	workers := []*proctest.Process{c.worker, second}

	ctx := context.Background()
	rdb, err := queue.Connect(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	store := queue.NewStore(rdb, slog.New(slog.DiscardHandler))

	code, sc := c.post(t, "/v1/schedules", `{"cron":"@every 1s","description":"system test",
		"job":{"type":"simulate","payload":{"result":"tick"}}}`)
	require.Equal(t, http.StatusOK, code, "%v", sc)
	name := sc["name"].(string)
	id := name[len("schedules/"):]
	created, err := time.Parse(time.RFC3339Nano, sc["createTime"].(string))
	require.NoError(t, err)

	jobIDs := func() []string {
		ids, err := store.ScheduleJobIDs(ctx, "default", id)
		require.NoError(t, err)
		return ids
	}
	redistest.Eventually(t, 30*time.Second, func() bool { return len(jobIDs()) >= 5 }, "5 periods of the schedule")

	_, err = jobforgev1.NewScheduleServiceClient(c.conn).DeleteSchedule(ctx, &jobforgev1.DeleteScheduleRequest{Name: name})
	require.NoError(t, err)
	deleted := time.Now()
	code, body := c.get(t, "/v1/"+name)
	require.Equal(t, http.StatusNotFound, code, "%v", body)
	// Three more periods pass without the schedule.
	redistest.Eventually(t, 10*time.Second, func() bool { return time.Since(deleted) > 3*time.Second }, "three periods after delete")

	ids := jobIDs()
	// Map each job to its period: ids are derived from (schedule, period).
	byID := map[string]time.Time{}
	for p := created.Truncate(time.Second).Add(time.Second); p.Before(deleted.Add(10 * time.Second)); p = p.Add(time.Second) {
		byID[queue.ScheduleJobID(id, p)] = p
	}
	var periods []time.Time
	for _, jid := range ids {
		p, ok := byID[jid]
		require.True(t, ok, "job %s belongs to no period: a duplicate under another id", jid)
		periods = append(periods, p)
	}
	slices.SortFunc(periods, time.Time.Compare)
	perReplica := []int{
		count(workers[0], "scheduled job created", "schedule_id", id),
		count(workers[1], "scheduled job created", "schedule_id", id),
	}
	deduped := count(workers[0], "scheduled job exists already", "schedule_id", id) +
		count(workers[1], "scheduled job exists already", "schedule_id", id)
	t.Logf("schedule %s: %d jobs for %d periods %s .. %s; created by replica 1: %d, replica 2: %d; "+
		"found existing (deduplicated): %d; deleted at %s",
		id, len(ids), len(periods), periods[0].Format(time.TimeOnly), periods[len(periods)-1].Format(time.TimeOnly),
		perReplica[0], perReplica[1], deduped, deleted.UTC().Format("15:04:05.000"))

	require.GreaterOrEqual(t, len(periods), 5)
	for i := 1; i < len(periods); i++ {
		require.Equal(t, time.Second, periods[i].Sub(periods[i-1]), "exactly one job per period: none twice, none skipped")
	}
	require.False(t, periods[len(periods)-1].After(deleted), "no job for a period after the delete")
	require.Equal(t, len(ids), perReplica[0]+perReplica[1], "every job was created by exactly one replica")

	// Every job runs once, on either worker, and carries the schedule label.
	for _, jid := range ids {
		job := c.waitREST(t, "jobs/"+jid, 30*time.Second, stateIs("SUCCEEDED", "FAILED"))
		require.Equal(t, "SUCCEEDED", job["state"], "%v", job)
		require.Equal(t, float64(1), job["attempts"])
		require.Equal(t, map[string]any{"schedule": id}, job["labels"])
	}
}
