package storetest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/store"
)

var listCases = []testCase{
	{name: "pages newest first, no duplicates, no gaps", run: testListPages},
	{name: "filter", run: testListFilter},
	{name: "create-time bounds", run: testListTimeBounds},
}

// createN creates n jobs of tenant labelled n=<i> and parity=<even|odd>,
// oldest first.
func (k *kit) createN(t *testing.T, tenant string, n int) []*store.Record {
	t.Helper()
	recs := make([]*store.Record, n)
	for i := range recs {
		nj := newJob(tenant, `{}`)
		nj.Labels = map[string]string{"n": fmt.Sprint(i), "parity": []string{"even", "odd"}[i%2]}
		recs[i] = k.create(t, nj)
	}
	return recs
}

// listAll follows q's pages to the end; between pages it calls between.
func (k *kit) listAll(t *testing.T, q store.ListQuery, between func()) []*store.Record {
	t.Helper()
	var all []*store.Record
	for page := 0; ; page++ {
		require.Less(t, page, 100, "listing does not end")
		recs, next, err := k.s.List(k.ctx, q)
		require.NoError(t, err)
		require.LessOrEqual(t, len(recs), q.Limit)
		all = append(all, recs...)
		if next == nil {
			return all
		}
		q.After = next
		if between != nil {
			between()
		}
	}
}

// newestFirst is ids of recs, newest first as List orders them: by create
// time, then by id, both descending.
func newestFirst(recs []*store.Record) []string {
	recs = slices.Clone(recs)
	slices.SortFunc(recs, func(a, b *store.Record) int {
		if c := b.CreateTime.Compare(a.CreateTime); c != 0 {
			return c
		}
		return cmpString(b.ID, a.ID)
	})
	return recordIDs(recs)
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func recordIDs(recs []*store.Record) []string {
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	return ids
}

func testListPages(t *testing.T, k *kit) {
	jobs := k.createN(t, tenantA, 7)
	k.createN(t, tenantB, 2)
	// Jobs created while a client pages are newer than its cursor: they
	// neither repeat nor displace what the pages return.
	got := k.listAll(t, store.ListQuery{Tenant: tenantA, Limit: 3}, func() { k.create(t, newJob(tenantA, `{}`)) })
	require.Equal(t, newestFirst(jobs), recordIDs(got))
	for _, r := range got {
		require.Equal(t, tenantA, r.Tenant)
	}
	one, next, err := k.s.List(k.ctx, store.ListQuery{Tenant: tenantA, Limit: 100})
	require.NoError(t, err)
	require.Nil(t, next, "a page that holds the rest ends the listing")
	require.Len(t, one, 7+2, "with the two created between pages")
}

func testListFilter(t *testing.T, k *kit) {
	jobs := k.createN(t, tenantA, 9)
	var odd []*store.Record
	for _, r := range jobs {
		if r.Labels["parity"] == "odd" {
			odd = append(odd, r)
		}
	}
	got := k.listAll(t, store.ListQuery{
		Tenant: tenantA, Limit: 2, Match: func(r *store.Record) bool { return r.Labels["parity"] == "odd" },
	}, nil)
	require.Equal(t, newestFirst(odd), recordIDs(got))

	none := k.listAll(t, store.ListQuery{Tenant: tenantA, Limit: 2, Match: func(*store.Record) bool { return false }}, nil)
	require.Empty(t, none)
}

func testListTimeBounds(t *testing.T, k *kit) {
	jobs := k.createN(t, tenantA, 8)
	after, before := jobs[1].CreateTime, jobs[6].CreateTime
	var want []*store.Record
	for _, r := range jobs {
		if r.CreateTime.After(after) && r.CreateTime.Before(before) {
			want = append(want, r)
		}
	}
	require.NotEmpty(t, want)
	got := k.listAll(t, store.ListQuery{Tenant: tenantA, Limit: 2, CreatedAfter: after, CreatedBefore: before}, nil)
	require.Equal(t, newestFirst(want), recordIDs(got), "bounds are exclusive")
}
