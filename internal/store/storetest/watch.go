package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/store"
)

var watchCases = []testCase{
	{name: "events in order until the job ends", run: testWatchOrder},
	{name: "resume after any event: no gaps, no repeats", run: testWatchResume},
	{name: "resume while the job runs", run: testWatchResumeLive},
	{name: "watch of a finished job ends", run: testWatchFinished},
	{name: "watch ends with its context or its callback", run: testWatchStops},
}

// watchAll watches job id until the watch ends by itself and returns every
// event it sent, the snapshot (if any) first. onEvent, if set, sees each
// event as it arrives.
func (k *kit) watchAll(t *testing.T, tenant, id, after string, onEvent func(store.Event)) []store.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(k.ctx, waitTimeout)
	defer cancel()
	var evs []store.Event
	err := k.s.Watch(ctx, tenant, id, after, func(ev store.Event) error {
		evs = append(evs, ev)
		if onEvent != nil {
			onEvent(ev)
		}
		return nil
	})
	require.NoError(t, err)
	return evs
}

// startOnSnapshot starts the worker when the watch's snapshot arrives, so
// the watch sees the job's every event.
func (k *kit) startOnSnapshot(t *testing.T) func(store.Event) {
	return func(ev store.Event) {
		if ev.Kind == store.EventSnapshot {
			k.startWorker(t)
		}
	}
}

func testWatchOrder(t *testing.T, k *kit) {
	rec := k.create(t, newJob(tenantA, `{"steps":5,"fail_times":1,"result":"ok"}`))
	evs := k.watchAll(t, tenantA, rec.ID, "", k.startOnSnapshot(t))

	require.Equal(t, store.EventSnapshot, evs[0].Kind)
	require.Equal(t, store.StatePending, evs[0].State)
	require.Equal(t, rec.ID, evs[0].Snapshot.ID)
	var got []string
	ids := map[string]bool{evs[0].ID: true}
	for _, ev := range evs[1:] {
		require.False(t, ids[ev.ID], "event id %s repeats", ev.ID)
		ids[ev.ID] = true
		switch ev.Kind {
		case store.EventState:
			got = append(got, fmt.Sprintf("%s/%d", ev.State, ev.Attempt))
		case store.EventProgress:
			got = append(got, fmt.Sprintf("%d%%", ev.Progress.Percent))
		default:
			t.Fatalf("unexpected event kind %d after the snapshot", ev.Kind)
		}
	}
	require.Equal(t, []string{
		"RUNNING/1", "20%", "40%", "60%", "80%", "100%", "RETRYING/1",
		"RUNNING/2", "20%", "40%", "60%", "80%", "100%", "SUCCEEDED/2",
	}, got)
	last := evs[len(evs)-1]
	require.JSONEq(t, `{"result":"ok","attempt":2}`, string(last.Result))
	require.NotNil(t, evs[7].Error, "the RETRYING event carries the attempt's error")
	require.Contains(t, evs[7].Error.Message, "planned failure 1")
}

func testWatchResume(t *testing.T, k *kit) {
	rec := k.create(t, newJob(tenantA, `{"steps":3,"fail_times":1}`))
	all := k.watchAll(t, tenantA, rec.ID, "", k.startOnSnapshot(t))
	require.Greater(t, len(all), 5)
	for i, ev := range all {
		rest := k.watchAll(t, tenantA, rec.ID, ev.ID, nil)
		require.Equal(t, eventIDs(all[i+1:]), eventIDs(rest), "resume after event %d (%s)", i, ev.ID)
	}
}

func testWatchResumeLive(t *testing.T, k *kit) {
	rec := k.create(t, newJob(tenantA, `{"steps":4,"gate":true}`))

	// The first watch ends after the snapshot and the start of the run...
	var first []store.Event
	errEnough := errors.New("enough")
	err := k.s.Watch(k.ctx, tenantA, rec.ID, "", func(ev store.Event) error {
		first = append(first, ev)
		if ev.Kind == store.EventSnapshot {
			k.startWorker(t)
		}
		if len(first) == 2 {
			return errEnough
		}
		return nil
	})
	require.ErrorIs(t, err, errEnough, "the callback's error ends the watch")
	require.Equal(t, store.StateRunning, first[1].State)

	// ...and the second resumes after it while the job runs: the progress
	// it reported meanwhile, then (the gate opens) the rest.
	require.Equal(t, rec.ID, receive(t, k.started, "start"))
	rest := k.watchAll(t, tenantA, rec.ID, first[1].ID, func(ev store.Event) {
		if ev.Kind == store.EventProgress && ev.Progress.Percent == 100 {
			k.open()
		}
	})
	var got []string
	for _, ev := range rest {
		if ev.Kind == store.EventProgress {
			got = append(got, fmt.Sprintf("%d%%", ev.Progress.Percent))
		} else {
			got = append(got, string(ev.State))
		}
	}
	require.Equal(t, []string{"25%", "50%", "75%", "100%", "SUCCEEDED"}, got)
}

func eventIDs(evs []store.Event) []string {
	ids := make([]string, 0, len(evs))
	for _, ev := range evs {
		ids = append(ids, ev.ID)
	}
	return ids
}

func testWatchFinished(t *testing.T, k *kit) {
	k.startWorker(t)
	rec := k.create(t, newJob(tenantA, `{"steps":2}`))
	k.waitState(t, tenantA, rec.ID, store.StateSucceeded)
	evs := k.watchAll(t, tenantA, rec.ID, "", nil)
	require.Len(t, evs, 1, "a finished job's watch is its snapshot")
	require.Equal(t, store.EventSnapshot, evs[0].Kind)
	require.Equal(t, store.StateSucceeded, evs[0].State)
	require.Equal(t, store.StateSucceeded, evs[0].Snapshot.State)
	require.Empty(t, k.watchAll(t, tenantA, rec.ID, evs[0].ID, nil), "nothing follows the snapshot of a finished job")

	cancelled := k.create(t, newJob(tenantA, `{"gate":true}`))
	receive(t, k.started, "start")
	_, err := k.s.Cancel(k.ctx, tenantA, cancelled.ID, "", "")
	require.NoError(t, err)
	evs = k.watchAll(t, tenantA, cancelled.ID, "", nil)
	require.Len(t, evs, 1)
	require.Equal(t, store.StateCancelled, evs[0].State)
}

func testWatchStops(t *testing.T, k *kit) {
	rec := k.create(t, newJob(tenantA, `{}`))
	ctx, cancel := context.WithTimeout(k.ctx, 200*time.Millisecond)
	defer cancel()
	n := 0
	err := k.s.Watch(ctx, tenantA, rec.ID, "", func(store.Event) error { n++; return nil })
	require.ErrorIs(t, err, context.DeadlineExceeded, "a pending job's watch lasts until its context ends")
	require.Equal(t, 1, n, "the snapshot")

	errStop := errors.New("stop")
	err = k.s.Watch(k.ctx, tenantA, rec.ID, "", func(store.Event) error { return errStop })
	require.ErrorIs(t, err, errStop)
}
