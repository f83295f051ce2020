package storetest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/store"
)

var lifecycleCases = []testCase{
	{name: "pending, running, succeeded", run: testSucceeds},
	{name: "scheduled until its time", run: testScheduled},
	{name: "failures retried until one succeeds", run: testRetriedToSuccess},
	{name: "failures retried until attempts are used up", run: testRetriedToFailure},
	{name: "permanent failure is not retried", run: testPermanentFailure},
	{name: "cancel a pending job", run: testCancelPending},
	{name: "cancel a scheduled job", run: testCancelScheduled},
	{name: "cancel a running job", run: testCancelRunning},
	{name: "retry a failed job", run: testRetryFailed},
	{name: "retry a cancelled job", run: testRetryCancelled},
}

func testSucceeds(t *testing.T, k *kit) {
	created := k.create(t, newJob(tenantA, `{"result":"done","gate":true}`))
	require.Equal(t, store.StatePending, created.State)
	require.Equal(t, typeName, created.Type)
	require.Equal(t, Queue, created.Queue)
	require.False(t, created.CreateTime.IsZero())
	got, err := k.s.Get(k.ctx, tenantA, created.ID)
	require.NoError(t, err)
	require.Equal(t, store.StatePending, got.State)

	k.startWorker(t)
	require.Equal(t, created.ID, receive(t, k.started, "start"))
	running := k.waitState(t, tenantA, created.ID, store.StateRunning)
	require.Equal(t, 1, running.Attempts)
	require.False(t, running.StartTime.IsZero())
	k.open()

	done := k.waitState(t, tenantA, created.ID, store.StateSucceeded)
	require.Equal(t, 1, done.Attempts)
	require.JSONEq(t, `{"result":"done","attempt":1}`, string(done.Result))
	require.Nil(t, done.Error)
	require.Empty(t, done.AttemptErrors)
	require.False(t, done.EndTime.Before(done.StartTime))
	require.Equal(t, created.CreateTime, done.CreateTime)
}

func testScheduled(t *testing.T, k *kit) {
	nj := newJob(tenantA, `{}`)
	nj.ScheduleTime = time.Now().Add(300 * time.Millisecond)
	created := k.create(t, nj)
	require.Equal(t, store.StateScheduled, created.State)
	require.WithinDuration(t, nj.ScheduleTime, created.ScheduleTime, time.Millisecond)
	k.startWorker(t)
	done := k.waitState(t, tenantA, created.ID, store.StateSucceeded)
	require.False(t, done.StartTime.Before(created.ScheduleTime), "started before its time")
}

func testRetriedToSuccess(t *testing.T, k *kit) {
	k.startWorker(t)
	rec := k.create(t, newJob(tenantA, `{"fail_times":2}`))
	done := k.waitState(t, tenantA, rec.ID, store.StateSucceeded, store.StateFailed)
	require.Equal(t, store.StateSucceeded, done.State)
	require.Equal(t, 3, done.Attempts)
	require.Len(t, done.AttemptErrors, 2)
	for i, e := range done.AttemptErrors {
		require.Equal(t, i+1, e.Attempt)
		require.Contains(t, e.Message, "planned failure")
		require.False(t, e.Permanent)
	}
}

func testRetriedToFailure(t *testing.T, k *kit) {
	rec := k.create(t, newJob(tenantA, `{"fail_times":5}`))
	var states []store.State
	for _, ev := range k.watchAll(t, tenantA, rec.ID, "", k.startOnSnapshot(t)) {
		if ev.Kind == store.EventState {
			states = append(states, ev.State)
		}
	}
	require.Equal(t, []store.State{
		store.StateRunning, store.StateRetrying, store.StateRunning, store.StateRetrying, store.StateRunning, store.StateFailed,
	}, states, "each attempt runs; each failure but the last is RETRYING")
	done, err := k.s.Get(k.ctx, tenantA, rec.ID)
	require.NoError(t, err)
	require.Equal(t, store.StateFailed, done.State)
	require.Equal(t, 3, done.Attempts, "MaxAttempts 3")
	require.Len(t, done.AttemptErrors, 3)
	require.NotNil(t, done.Error)
	require.Equal(t, 3, done.Error.Attempt)
	require.Contains(t, done.Error.Message, "planned failure 3")
}

func testPermanentFailure(t *testing.T, k *kit) {
	k.startWorker(t)
	rec := k.create(t, newJob(tenantA, `{"fail_times":1,"permanent":true}`))
	done := k.waitState(t, tenantA, rec.ID, store.StateSucceeded, store.StateFailed)
	require.Equal(t, store.StateFailed, done.State)
	require.Equal(t, 1, done.Attempts)
	require.NotNil(t, done.Error)
	require.True(t, done.Error.Permanent)
}

func testCancelPending(t *testing.T, k *kit) {
	rec := k.create(t, newJob(tenantA, `{"result":"never"}`))
	cancelled, err := k.s.Cancel(k.ctx, tenantA, rec.ID, "not needed", "alice")
	require.NoError(t, err)
	require.Equal(t, store.StateCancelled, cancelled.State)
	require.NotNil(t, cancelled.Cancellation)
	require.Equal(t, "not needed", cancelled.Cancellation.Reason)
	require.Equal(t, "alice", cancelled.Cancellation.RequestedBy)
	require.False(t, cancelled.EndTime.IsZero())

	// A job created after it runs; the cancelled one stays as it is.
	k.startWorker(t)
	later := k.create(t, newJob(tenantA, `{}`))
	k.waitState(t, tenantA, later.ID, store.StateSucceeded)
	got, err := k.s.Get(k.ctx, tenantA, rec.ID)
	require.NoError(t, err)
	require.Equal(t, store.StateCancelled, got.State)
	require.Zero(t, got.Attempts)
}

func testCancelScheduled(t *testing.T, k *kit) {
	nj := newJob(tenantA, `{}`)
	nj.ScheduleTime = time.Now().Add(time.Hour)
	rec := k.create(t, nj)
	require.Equal(t, store.StateScheduled, rec.State)
	cancelled, err := k.s.Cancel(k.ctx, tenantA, rec.ID, "", "bob")
	require.NoError(t, err)
	require.Equal(t, store.StateCancelled, cancelled.State)
}

func testCancelRunning(t *testing.T, k *kit) {
	k.startWorker(t)
	rec := k.create(t, newJob(tenantA, `{"gate":true}`))
	require.Equal(t, rec.ID, receive(t, k.started, "start"))
	cancelled, err := k.s.Cancel(k.ctx, tenantA, rec.ID, "stop", "carol")
	require.NoError(t, err)
	require.Equal(t, store.StateCancelled, cancelled.State)
	cause := receive(t, k.cancelled, "cancelled handler context")
	require.Error(t, cause, "the handler sees its context cancelled")

	// The attempt's end does not change the outcome: a job created after
	// it finishes, and the cancelled one is still CANCELLED.
	later := k.create(t, newJob(tenantA, `{}`))
	k.waitState(t, tenantA, later.ID, store.StateSucceeded)
	got, err := k.s.Get(k.ctx, tenantA, rec.ID)
	require.NoError(t, err)
	require.Equal(t, store.StateCancelled, got.State)
	require.Equal(t, "stop", got.Cancellation.Reason)
}

func testRetryFailed(t *testing.T, k *kit) {
	k.startWorker(t)
	nj := newJob(tenantA, `{"fail_times":1,"result":"second time"}`)
	nj.MaxAttempts = 1
	rec := k.create(t, nj)
	failed := k.waitState(t, tenantA, rec.ID, store.StateFailed)
	require.Len(t, failed.AttemptErrors, 1)

	retried, err := k.s.Retry(k.ctx, tenantA, rec.ID)
	require.NoError(t, err)
	require.Equal(t, rec.ID, retried.ID, "a retried job keeps its id")
	require.Contains(t, []store.State{store.StatePending, store.StateRunning, store.StateSucceeded}, retried.State)
	done := k.waitState(t, tenantA, rec.ID, store.StateSucceeded, store.StateFailed)
	require.Equal(t, store.StateSucceeded, done.State, "a fresh attempt budget")
	require.Equal(t, 2, done.Attempts)
	require.Len(t, done.AttemptErrors, 1, "attempt errors are kept")
	var res runResult
	require.NoError(t, json.Unmarshal(done.Result, &res))
	require.Equal(t, runResult{Result: "second time", Attempt: 2}, res)
}

func testRetryCancelled(t *testing.T, k *kit) {
	rec := k.create(t, newJob(tenantA, `{}`))
	_, err := k.s.Cancel(k.ctx, tenantA, rec.ID, "", "")
	require.NoError(t, err)
	retried, err := k.s.Retry(k.ctx, tenantA, rec.ID)
	require.NoError(t, err)
	require.Equal(t, store.StatePending, retried.State, "no worker runs yet")
	require.Nil(t, retried.Cancellation)
	require.True(t, retried.EndTime.IsZero())
	k.startWorker(t)
	k.waitState(t, tenantA, rec.ID, store.StateSucceeded)
}

var refusalCases = []testCase{
	{name: "retry of an unfinished or succeeded job", run: testRetryRefused},
	{name: "cancel of a finished job", run: testCancelRefused},
	{name: "unknown job", run: testUnknownJob},
}

func requireStateError(t *testing.T, err error, op string, state store.State) {
	t.Helper()
	var se *store.StateError
	require.ErrorAs(t, err, &se)
	require.Equal(t, op, se.Op)
	require.Equal(t, state, se.State)
}

func testRetryRefused(t *testing.T, k *kit) {
	pending := k.create(t, newJob(tenantA, `{}`))
	_, err := k.s.Retry(k.ctx, tenantA, pending.ID)
	requireStateError(t, err, "retry", store.StatePending)

	k.startWorker(t)
	running := k.create(t, newJob(tenantA, `{"gate":true}`))
	require.Equal(t, running.ID, receive(t, k.started, "start"))
	_, err = k.s.Retry(k.ctx, tenantA, running.ID)
	requireStateError(t, err, "retry", store.StateRunning)
	k.open()

	k.waitState(t, tenantA, pending.ID, store.StateSucceeded)
	_, err = k.s.Retry(k.ctx, tenantA, pending.ID)
	requireStateError(t, err, "retry", store.StateSucceeded)
}

func testCancelRefused(t *testing.T, k *kit) {
	k.startWorker(t)
	succeeded := k.create(t, newJob(tenantA, `{}`))
	failedJob := newJob(tenantA, `{"fail_times":1,"permanent":true}`)
	failed := k.create(t, failedJob)
	cancelled := k.create(t, newJob(tenantA, `{"gate":true}`))
	receive(t, k.started, "start")
	_, err := k.s.Cancel(k.ctx, tenantA, cancelled.ID, "", "")
	require.NoError(t, err)
	k.waitState(t, tenantA, succeeded.ID, store.StateSucceeded)
	k.waitState(t, tenantA, failed.ID, store.StateFailed)

	for _, tt := range []struct {
		id    string
		state store.State
	}{{succeeded.ID, store.StateSucceeded}, {failed.ID, store.StateFailed}, {cancelled.ID, store.StateCancelled}} {
		_, err := k.s.Cancel(k.ctx, tenantA, tt.id, "", "")
		requireStateError(t, err, "cancel", tt.state)
	}
}

func testUnknownJob(t *testing.T, k *kit) {
	const id = "0190d3a4-0000-7000-8000-000000000000"
	_, err := k.s.Get(k.ctx, tenantA, id)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = k.s.Cancel(k.ctx, tenantA, id, "", "")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = k.s.Retry(k.ctx, tenantA, id)
	require.ErrorIs(t, err, store.ErrNotFound)
	err = k.s.Watch(k.ctx, tenantA, id, "", func(store.Event) error { return errors.New("no event expected") })
	require.ErrorIs(t, err, store.ErrNotFound)
}
