package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/store"
)

var idempotencyCases = []testCase{
	{name: "same key and request: same job", run: testIdempotentRepeat},
	{name: "same key, other request: conflict", run: testIdempotencyConflict},
	{name: "same key in another tenant: another job", run: testIdempotencyPerTenant},
	{name: "deterministic id: created once", run: testDeterministicID},
	{name: "waiting-job quota per tenant", opts: Options{MaxWaitingPerTenant: 2}, run: testQuota},
}

// keyed is a job with an idempotency key and request hash.
func keyed(tenant, key, hash, payload string) store.NewJob {
	nj := newJob(tenant, payload)
	nj.IdempotencyKey, nj.RequestHash = key, hash
	return nj
}

func testIdempotentRepeat(t *testing.T, k *kit) {
	first := k.create(t, keyed(tenantA, "order-1", "h1", `{"result":"a"}`))
	require.Equal(t, "order-1", first.IdempotencyKey)
	again, existed, err := k.s.Create(k.ctx, keyed(tenantA, "order-1", "h1", `{"result":"a"}`))
	require.NoError(t, err)
	require.True(t, existed)
	require.Equal(t, first.ID, again.ID)
	require.Equal(t, first.CreateTime, again.CreateTime)
	recs, _, err := k.s.List(k.ctx, store.ListQuery{Tenant: tenantA, Limit: 10})
	require.NoError(t, err)
	require.Len(t, recs, 1, "one job for the key")
}

func testIdempotencyConflict(t *testing.T, k *kit) {
	first := k.create(t, keyed(tenantA, "order-2", "h1", `{"result":"a"}`))
	_, _, err := k.s.Create(k.ctx, keyed(tenantA, "order-2", "h2", `{"result":"b"}`))
	var ic *store.IdempotencyConflictError
	require.ErrorAs(t, err, &ic)
	require.Equal(t, "order-2", ic.Key)
	require.Equal(t, first.ID, ic.JobID)
}

func testIdempotencyPerTenant(t *testing.T, k *kit) {
	a := k.create(t, keyed(tenantA, "order-3", "h1", `{}`))
	b := k.create(t, keyed(tenantB, "order-3", "h1", `{}`))
	require.NotEqual(t, a.ID, b.ID)
	require.Equal(t, tenantB, b.Tenant)
}

func testDeterministicID(t *testing.T, k *kit) {
	nj := newJob(tenantA, `{}`)
	nj.ID = "0190d3a4-1111-7000-8000-000000000001"
	first := k.create(t, nj)
	require.Equal(t, nj.ID, first.ID)
	again, existed, err := k.s.Create(k.ctx, nj)
	require.NoError(t, err)
	require.True(t, existed)
	require.Equal(t, first.ID, again.ID)
	require.Equal(t, first.CreateTime, again.CreateTime)
}

func testQuota(t *testing.T, k *kit) {
	k.create(t, newJob(tenantA, `{}`))
	k.create(t, newJob(tenantA, `{}`))
	_, _, err := k.s.Create(k.ctx, newJob(tenantA, `{}`))
	var qe *store.QuotaError
	require.ErrorAs(t, err, &qe)
	require.Equal(t, 2, qe.Limit)
	k.create(t, newJob(tenantB, `{}`)) // another tenant has its own quota

	// A job that started no longer waits.
	k.startWorker(t)
	waitFor(t, func() bool {
		_, _, err := k.s.Create(k.ctx, newJob(tenantA, `{}`))
		return err == nil
	}, "tenant A may create again once its jobs ran")
}

var batchCases = []testCase{
	{name: "each item on its own", run: testBatchNotAtomic},
	{name: "all or nothing", run: testBatchAtomic},
	{name: "large mixed batch", opts: Options{MaxWaitingPerTenant: 100}, run: testBatchMixed},
}

func testBatchNotAtomic(t *testing.T, k *kit) {
	used := k.create(t, keyed(tenantA, "taken", "h1", `{}`))
	results := k.s.CreateMany(k.ctx, []store.NewJob{
		newJob(tenantA, `{"result":"one"}`),
		keyed(tenantA, "taken", "other", `{}`),
		keyed(tenantA, "taken", "h1", `{}`),
		newJob(tenantA, `{"result":"three"}`),
	}, false)
	require.Len(t, results, 4)
	require.NoError(t, results[0].Err)
	var ic *store.IdempotencyConflictError
	require.ErrorAs(t, results[1].Err, &ic)
	require.NoError(t, results[2].Err)
	require.True(t, results[2].Existed)
	require.Equal(t, used.ID, results[2].Record.ID)
	require.NoError(t, results[3].Err)
	require.False(t, results[3].Existed)
	for _, i := range []int{0, 3} {
		got, err := k.s.Get(k.ctx, tenantA, results[i].Record.ID)
		require.NoError(t, err)
		require.Equal(t, store.StatePending, got.State)
	}
	k.startWorker(t)
	k.waitState(t, tenantA, results[3].Record.ID, store.StateSucceeded)
}

func testBatchAtomic(t *testing.T, k *kit) {
	k.create(t, keyed(tenantA, "taken", "h1", `{}`))
	batch := []store.NewJob{newJob(tenantA, `{}`), keyed(tenantA, "fresh", "h1", `{}`), keyed(tenantA, "taken", "other", `{}`)}
	batch[0].ID = "0190d3a4-2222-7000-8000-000000000001"
	results := k.s.CreateMany(k.ctx, batch, true)
	require.Len(t, results, 3)
	for i, r := range results {
		require.Error(t, r.Err, "item %d", i)
		require.Nil(t, r.Record, "item %d", i)
	}
	var ic *store.IdempotencyConflictError
	require.ErrorAs(t, results[2].Err, &ic, "the failing item says why")

	_, err := k.s.Get(k.ctx, tenantA, batch[0].ID)
	require.ErrorIs(t, err, store.ErrNotFound, "no item of a failed atomic batch exists")
	recs, _, err := k.s.List(k.ctx, store.ListQuery{Tenant: tenantA, Limit: 10})
	require.NoError(t, err)
	require.Len(t, recs, 1, "only the job created before the batch")
	again, existed, err := k.s.Create(k.ctx, keyed(tenantA, "fresh", "h2", `{}`))
	require.NoError(t, err)
	require.False(t, existed, "the key of an undone item is free")
	require.NotEqual(t, batch[0].ID, again.ID)

	ok := k.s.CreateMany(k.ctx, []store.NewJob{newJob(tenantA, `{}`), newJob(tenantA, `{}`)}, true)
	for i, r := range ok {
		require.NoError(t, r.Err, "item %d", i)
		require.NotNil(t, r.Record)
	}
}

var tenancyCases = []testCase{
	{name: "another tenant's job does not exist", run: testTenancy},
}

func testTenancy(t *testing.T, k *kit) {
	k.startWorker(t)
	rec := k.create(t, newJob(tenantA, `{"fail_times":1,"permanent":true}`))
	k.waitState(t, tenantA, rec.ID, store.StateFailed)

	_, err := k.s.Get(k.ctx, tenantB, rec.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = k.s.Retry(k.ctx, tenantB, rec.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	err = k.s.Watch(k.ctx, tenantB, rec.ID, "", func(store.Event) error { return nil })
	require.ErrorIs(t, err, store.ErrNotFound)
	recs, next, err := k.s.List(k.ctx, store.ListQuery{Tenant: tenantB, Limit: 10})
	require.NoError(t, err)
	require.Empty(t, recs)
	require.Nil(t, next)

	pending := k.create(t, newJob(tenantA, `{"gate":true}`))
	receive(t, k.started, "start")
	_, err = k.s.Cancel(k.ctx, tenantB, pending.ID, "", "")
	require.ErrorIs(t, err, store.ErrNotFound)
	got, err := k.s.Get(k.ctx, tenantA, pending.ID)
	require.NoError(t, err)
	require.Equal(t, store.StateRunning, got.State, "untouched by the other tenant's cancel")
	recs, _, err = k.s.List(k.ctx, store.ListQuery{Tenant: tenantA, Limit: 10})
	require.NoError(t, err)
	require.Len(t, recs, 2)
}

// testBatchMixed creates one batch larger than a store may write in one
// step, mixing tenants, queues (the quota is per tenant and queue),
// scheduled and pending jobs, a repeated idempotency key and a quota that
// fills up halfway: every item gets the answer it would get alone, in
// order.
func testBatchMixed(t *testing.T, k *kit) {
	var batch []store.NewJob
	for i := range 140 { // tenant A: the quota (100) fills at item 100; the queue "other" has its own
		nj := newJob(tenantA, `{}`)
		if i >= 130 {
			nj.Queue = "other"
		}
		batch = append(batch, nj)
	}
	later := time.Now().Add(time.Hour)
	for i := range 20 { // tenant B: its own quota; every other job scheduled
		nj := newJob(tenantB, fmt.Sprintf(`{"result":"b%d"}`, i))
		if i%2 == 0 {
			nj.ScheduleTime = later
		}
		batch = append(batch, nj)
	}
	batch = append(batch,
		keyed(tenantB, "twice", "h1", `{}`),
		keyed(tenantB, "twice", "h1", `{}`),
		keyed(tenantB, "twice", "h2", `{}`))

	results := k.s.CreateMany(k.ctx, batch, false)
	require.Len(t, results, len(batch))
	for i, r := range results[:140] {
		if i < 100 || i >= 130 {
			require.NoError(t, r.Err, "item %d", i)
			require.Equal(t, batch[i].Queue, r.Record.Queue, "item %d", i)
			continue
		}
		var qe *store.QuotaError
		require.ErrorAs(t, r.Err, &qe, "item %d: tenant A's quota is full", i)
	}
	for i, r := range results[140:160] {
		require.NoError(t, r.Err, "tenant B item %d", i)
		want := store.StatePending
		if i%2 == 0 {
			want = store.StateScheduled
		}
		got, err := k.s.Get(k.ctx, tenantB, r.Record.ID)
		require.NoError(t, err)
		require.Equal(t, want, got.State, "tenant B item %d", i)
		require.JSONEq(t, fmt.Sprintf(`{"result":"b%d"}`, i), string(got.Payload))
	}
	first, again, conflict := results[160], results[161], results[162]
	require.NoError(t, first.Err)
	require.False(t, first.Existed)
	require.NoError(t, again.Err)
	require.True(t, again.Existed, "the same key later in the same batch finds the job")
	require.Equal(t, first.Record.ID, again.Record.ID)
	var ic *store.IdempotencyConflictError
	require.ErrorAs(t, conflict.Err, &ic)
	require.Equal(t, first.Record.ID, ic.JobID)

	count := func(tenant string) int {
		n, q := 0, store.ListQuery{Tenant: tenant, Limit: 100}
		for {
			recs, next, err := k.s.List(k.ctx, q)
			require.NoError(t, err)
			n += len(recs)
			if next == nil {
				return n
			}
			q.After = next
		}
	}
	require.Equal(t, 110, count(tenantA), "tenant A: the jobs within its quotas, each once")
	require.Equal(t, 21, count(tenantB))

	k.startWorker(t) // runs Queue: the pending jobs of tenant B include a keyed one
	k.waitState(t, tenantB, results[141].Record.ID, store.StateSucceeded)
	k.waitState(t, tenantB, first.Record.ID, store.StateSucceeded)
}
