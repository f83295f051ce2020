package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/store"
)

var scheduleCases = []testCase{
	{name: "create, get, list, delete", run: testScheduleCRUD},
	{name: "another tenant's schedule does not exist", run: testScheduleTenancy},
	{name: "invalid spec", run: testScheduleInvalid},
}

func newSchedule(tenant, cron string) store.Schedule {
	return store.Schedule{Tenant: tenant, Cron: cron, Description: "nightly", Job: newJob(tenant, `{"result":"x"}`)}
}

func testScheduleCRUD(t *testing.T, k *kit) {
	in := newSchedule(tenantA, "0 3 * * *")
	in.Job.RetryPolicy = store.RetryPolicy{Initial: 2 * time.Second, Multiplier: 3}
	in.Job.Labels = map[string]string{"team": "data"}
	in.Delay = time.Minute
	sc, err := k.s.CreateSchedule(k.ctx, in)
	require.NoError(t, err)
	require.NotEmpty(t, sc.ID)
	require.Equal(t, "UTC", sc.TimeZone, "the default time zone")
	require.False(t, sc.CreateTime.IsZero())
	require.True(t, sc.NextRun(sc.CreateTime).After(sc.CreateTime))

	got, err := k.s.GetSchedule(k.ctx, tenantA, sc.ID)
	require.NoError(t, err)
	require.Equal(t, sc.ID, got.ID)
	require.Equal(t, in.Cron, got.Cron)
	require.Equal(t, in.Description, got.Description)
	require.Equal(t, in.Delay, got.Delay)
	require.Equal(t, in.Job.RetryPolicy, got.Job.RetryPolicy)
	require.Equal(t, in.Job.Labels, got.Job.Labels)
	require.JSONEq(t, string(in.Job.Payload), string(got.Job.Payload))
	require.Equal(t, sc.NextRun(sc.CreateTime), got.NextRun(sc.CreateTime))

	second, err := k.s.CreateSchedule(k.ctx, newSchedule(tenantA, "@every 1h"))
	require.NoError(t, err)
	list, err := k.s.ListSchedules(k.ctx, tenantA)
	require.NoError(t, err)
	require.Equal(t, []string{sc.ID, second.ID}, []string{list[0].ID, list[1].ID}, "oldest first")

	require.NoError(t, k.s.DeleteSchedule(k.ctx, tenantA, sc.ID))
	_, err = k.s.GetSchedule(k.ctx, tenantA, sc.ID)
	require.ErrorIs(t, err, store.ErrScheduleNotFound)
	require.ErrorIs(t, k.s.DeleteSchedule(k.ctx, tenantA, sc.ID), store.ErrScheduleNotFound)
	list, err = k.s.ListSchedules(k.ctx, tenantA)
	require.NoError(t, err)
	require.Len(t, list, 1)
}

func testScheduleTenancy(t *testing.T, k *kit) {
	sc, err := k.s.CreateSchedule(k.ctx, newSchedule(tenantA, "@hourly"))
	require.NoError(t, err)
	_, err = k.s.GetSchedule(k.ctx, tenantB, sc.ID)
	require.ErrorIs(t, err, store.ErrScheduleNotFound)
	require.ErrorIs(t, k.s.DeleteSchedule(k.ctx, tenantB, sc.ID), store.ErrScheduleNotFound)
	list, err := k.s.ListSchedules(k.ctx, tenantB)
	require.NoError(t, err)
	require.Empty(t, list)
	_, err = k.s.GetSchedule(k.ctx, tenantA, sc.ID)
	require.NoError(t, err, "untouched by the other tenant's delete")
}

func testScheduleInvalid(t *testing.T, k *kit) {
	_, err := k.s.CreateSchedule(k.ctx, newSchedule(tenantA, "61 * * * *"))
	var se *store.SpecError
	require.ErrorAs(t, err, &se)
	require.Equal(t, "cron", se.Field)
	list, err := k.s.ListSchedules(k.ctx, tenantA)
	require.NoError(t, err)
	require.Empty(t, list)
}

var queueCases = []testCase{
	{name: "pause and resume", run: testPauseResume},
}

func testPauseResume(t *testing.T, k *kit) {
	const unused = "conformance-unused"
	k.create(t, newJob(tenantA, `{}`))
	paused := func() []bool {
		infos, err := k.s.Queues(k.ctx, []string{Queue, unused})
		require.NoError(t, err)
		require.Len(t, infos, 2)
		require.Equal(t, Queue, infos[0].Name)
		require.Equal(t, unused, infos[1].Name, "a queue no job used is reported too")
		return []bool{infos[0].Paused, infos[1].Paused}
	}
	require.Equal(t, []bool{false, false}, paused())
	for range 2 { // idempotent
		require.NoError(t, k.s.PauseQueue(k.ctx, Queue))
		require.NoError(t, k.s.PauseQueue(k.ctx, unused))
	}
	require.Equal(t, []bool{true, true}, paused())
	for range 2 {
		require.NoError(t, k.s.ResumeQueue(k.ctx, Queue))
		require.NoError(t, k.s.ResumeQueue(k.ctx, unused))
	}
	require.Equal(t, []bool{false, false}, paused())

	infos, err := k.s.Queues(k.ctx, []string{Queue})
	require.NoError(t, err)
	require.Equal(t, 1, infos[0].Pending, "the job waits in its queue")
	k.startWorker(t)
	waitFor(t, func() bool {
		ws, err := k.s.Workers(k.ctx)
		require.NoError(t, err)
		return len(ws) > 0
	}, "a running worker is listed")
}
