package queue_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/redistest"
	"github.com/jobforge/jobforge/internal/store"
)

// A failed job's record does not depend on asynq's archive, which asynq
// trims (10 000 tasks per queue, 90 days): the job stays readable and
// retryable after its archived task is gone.
func TestFailedJobOutlivesAsynqArchive(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startWorker(t, time.Hour)
	ctx := context.Background()
	rec, _, err := b.store.Create(ctx, store.NewJob{
		Tenant: "t", Type: "simulate", Queue: "default", Payload: json.RawMessage(`{"fail_times":1,"message":"boom"}`),
		MaxAttempts: 1, Timeout: time.Minute,
	})
	require.NoError(t, err)
	b.waitState(t, rec.ID, store.StateFailed, 20*time.Second)

	insp := asynq.NewInspectorFromRedisClient(b.rdb)
	redistest.Eventually(t, 10*time.Second, func() bool {
		info, err := insp.GetTaskInfo("default", rec.ID)
		return err == nil && info.State == asynq.TaskStateArchived
	}, "asynq archives the failed task")
	require.NoError(t, insp.DeleteTask("default", rec.ID), "what asynq's archive trimming does")

	got, err := b.store.Get(ctx, "t", rec.ID)
	require.NoError(t, err)
	require.Equal(t, store.StateFailed, got.State)
	require.Equal(t, "boom (attempt 1 of 1 planned failures)", got.Error.Message)

	_, err = b.store.Retry(ctx, "t", rec.ID)
	require.NoError(t, err)
	done := b.waitState(t, rec.ID, store.StateSucceeded, 20*time.Second)
	require.Equal(t, 2, done.Attempts)
}

// After the retention, a finished job's record, events and errors are gone
// together, and listing drops its index entry.
func TestRetentionRemovesFinishedJobs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startWorker(t, time.Second)
	ctx := context.Background()
	rec, _, err := b.store.Create(ctx, store.NewJob{
		Tenant: "t", Type: "simulate", Queue: "default", Payload: json.RawMessage(`{"fail_times":1}`),
		MaxAttempts: 2, Timeout: time.Minute,
	})
	require.NoError(t, err)
	done := b.waitState(t, rec.ID, store.StateSucceeded, 20*time.Second)
	require.WithinDuration(t, done.EndTime.Add(time.Second), done.ExpireTime, time.Millisecond)
	for _, suffix := range []string{"", ":events", ":errors"} {
		ttl, err := b.rdb.PTTL(ctx, "jobforge:{default}:job:"+rec.ID+suffix).Result()
		require.NoError(t, err)
		require.Greater(t, ttl, time.Duration(0), "key %q expires", suffix)
	}
	redistest.Eventually(t, 10*time.Second, func() bool {
		_, err := b.store.Get(ctx, "t", rec.ID)
		return err == store.ErrNotFound
	}, "record expires after the retention")
	n, err := b.rdb.Exists(ctx, "jobforge:{default}:job:"+rec.ID+":events", "jobforge:{default}:job:"+rec.ID+":errors").Result()
	require.NoError(t, err)
	require.Zero(t, n)
	recs, _, err := b.store.List(ctx, store.ListQuery{Tenant: "t", Limit: 10})
	require.NoError(t, err)
	require.Empty(t, recs)
	left, err := b.rdb.ZCard(ctx, "jobforge:{default}:index:t").Result()
	require.NoError(t, err)
	require.Zero(t, left, "listing removed the expired job's index entry")
}
