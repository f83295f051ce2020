package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/store"
)

// retention is the short retention of the retention cases.
const retention = time.Second

var retentionCases = []testCase{
	{name: "a finished job expires", opts: Options{Retention: retention}, run: testRetentionFinished},
	{name: "a cancelled job expires", opts: Options{Retention: retention}, run: testRetentionCancelled},
	{name: "an unfinished job stays", opts: Options{Retention: retention}, run: testRetentionUnfinished},
}

// waitGone waits until job id of tenantA is no longer found, by Get nor
// by List.
func (k *kit) waitGone(t *testing.T, id string) {
	t.Helper()
	waitFor(t, func() bool {
		_, err := k.s.Get(k.ctx, tenantA, id)
		if err == nil {
			return false
		}
		require.ErrorIs(t, err, store.ErrNotFound)
		return true
	}, "job %s expires", id)
	recs, _, err := k.s.List(k.ctx, store.ListQuery{Tenant: tenantA, Limit: 100})
	require.NoError(t, err)
	for _, r := range recs {
		require.NotEqual(t, id, r.ID, "an expired job is not listed")
	}
}

func testRetentionFinished(t *testing.T, k *kit) {
	k.startWorker(t)
	rec := k.create(t, newJob(tenantA, `{}`))
	done := k.waitState(t, tenantA, rec.ID, store.StateSucceeded)
	require.WithinDuration(t, done.EndTime.Add(retention), done.ExpireTime, 10*time.Millisecond)
	k.waitGone(t, rec.ID)
	_, err := k.s.Retry(k.ctx, tenantA, rec.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testRetentionCancelled(t *testing.T, k *kit) {
	rec := k.create(t, newJob(tenantA, `{}`))
	cancelled, err := k.s.Cancel(k.ctx, tenantA, rec.ID, "", "")
	require.NoError(t, err)
	require.False(t, cancelled.ExpireTime.IsZero())
	k.waitGone(t, rec.ID)
}

func testRetentionUnfinished(t *testing.T, k *kit) {
	// A running and a scheduled job outlive a finished job created after
	// them: once it is gone, the retention has passed for them too.
	k.startWorker(t)
	running := k.create(t, newJob(tenantA, `{"gate":true}`))
	receive(t, k.started, "start")
	nj := newJob(tenantA, `{}`)
	nj.ScheduleTime = time.Now().Add(time.Hour)
	scheduled := k.create(t, nj)
	done := k.create(t, newJob(tenantA, `{}`))
	k.waitState(t, tenantA, done.ID, store.StateSucceeded)
	k.waitGone(t, done.ID)

	got, err := k.s.Get(k.ctx, tenantA, running.ID)
	require.NoError(t, err)
	require.Equal(t, store.StateRunning, got.State)
	require.True(t, got.ExpireTime.IsZero())
	got, err = k.s.Get(k.ctx, tenantA, scheduled.ID)
	require.NoError(t, err)
	require.Equal(t, store.StateScheduled, got.State)
}
