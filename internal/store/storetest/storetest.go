// Package storetest is the conformance suite of the storage seam: every
// implementation of store.Store runs Exercise and passes it. It checks
// what the API relies on and no implementation detail: the job state
// machine, idempotent and batch creation, tenant isolation, retention,
// event streams and listing, schedules and queue controls.
//
// An implementation runs it from one test:
//
//	func TestConformance(t *testing.T) {
//		storetest.Exercise(t, func(t *testing.T, opts storetest.Options) storetest.Harness {
//			st := newStoreOnFreshStorage(t, opts)
//			return storetest.Harness{Store: st, StartWorker: func(t *testing.T, types ...*jobs.Type) { ... }}
//		})
//	}
//
// Every case runs in parallel on a harness of its own and waits on
// conditions with deadlines, never on the clock.
package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/store"
	"github.com/jobforge/jobforge/jobs"
)

// Queue is the queue every job of the suite is put on; a harness's workers
// read it.
const Queue = "conformance"

// Options configures the store a harness builds.
type Options struct {
	// Retention is how long a finished job stays readable. The suite
	// always sets it, to an hour or, to test expiry, to one second.
	Retention time.Duration
	// MaxWaitingPerTenant caps a tenant's pending plus scheduled jobs;
	// 0 means no cap.
	MaxWaitingPerTenant int
}

// Harness is one store under test on storage that no other harness sees.
type Harness struct {
	Store store.Store
	// StartWorker runs jobs of types from Queue until the test ends, at
	// least four at a time. A failed attempt is retried within a few
	// milliseconds (the suite does not test backoff) and finished jobs are
	// kept for Options.Retention. A test starts at most one worker.
	StartWorker func(t *testing.T, types ...*jobs.Type)
}

// Exercise runs the suite against the implementation newHarness builds.
func Exercise(t *testing.T, newHarness func(t *testing.T, opts Options) Harness) {
	groups := []struct {
		name  string
		cases []testCase
	}{
		{"Lifecycle", lifecycleCases},
		{"Refusals", refusalCases},
		{"Idempotency", idempotencyCases},
		{"Batch", batchCases},
		{"Tenancy", tenancyCases},
		{"Retention", retentionCases},
		{"Watch", watchCases},
		{"List", listCases},
		{"Schedules", scheduleCases},
		{"Queues", queueCases},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range g.cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, newKit(t, newHarness, tc.opts))
				})
			}
		})
	}
}

// testCase is one named check; opts are its store's options beyond the
// suite's defaults.
type testCase struct {
	name string
	opts Options
	run  func(t *testing.T, k *kit)
}

// Tenants of the suite's jobs.
const (
	tenantA = "tenant-a"
	tenantB = "tenant-b"
)

// Deadlines. Jobs run in milliseconds; these only bound a failure.
const (
	waitTimeout = 20 * time.Second
	pollEvery   = 5 * time.Millisecond
)

// kit is one case's harness, context and job type.
type kit struct {
	h   Harness
	s   store.Store
	ctx context.Context
	typ *jobs.Type
	// started receives the id of each gated job when its handler starts.
	started chan string
	// release lets every gated job finish (open closes it).
	release     chan struct{}
	releaseOnce sync.Once
	// cancelled receives the cause of each gated handler's cancelled context.
	cancelled chan error
}

func newKit(t *testing.T, newHarness func(*testing.T, Options) Harness, opts Options) *kit {
	if opts.Retention == 0 {
		opts.Retention = time.Hour
	}
	h := newHarness(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	t.Cleanup(cancel)
	k := &kit{
		h: h, s: h.Store, ctx: ctx,
		started: make(chan string, 64), release: make(chan struct{}), cancelled: make(chan error, 64),
	}
	k.typ = k.defineRun()
	return k
}

// startWorker runs the suite's job type. Gated jobs still waiting when
// the test ends are let go before the worker stops.
func (k *kit) startWorker(t *testing.T) {
	k.h.StartWorker(t, k.typ)
	t.Cleanup(k.open)
}

// open lets every gated job finish.
func (k *kit) open() { k.releaseOnce.Do(func() { close(k.release) }) }

// runPayload says how a job of the suite's type behaves.
type runPayload struct {
	// Result is returned in the job's result.
	Result string `json:"result,omitempty"`
	// FailTimes is how many attempts fail before one succeeds.
	FailTimes int `json:"fail_times,omitempty"`
	// Permanent makes the failures permanent (no further attempt).
	Permanent bool `json:"permanent,omitempty"`
	// Steps is how many progress reports come before the outcome.
	Steps int `json:"steps,omitempty"`
	// Gate holds the handler until kit.release is closed or its context
	// is cancelled.
	Gate bool `json:"gate,omitempty"`
}

type runResult struct {
	Result  string `json:"result"`
	Attempt int    `json:"attempt"`
}

// typeName is the suite's job type.
const typeName = "storetest.run"

func (k *kit) defineRun() *jobs.Type {
	return jobs.Define(jobs.Spec[runPayload, runResult]{
		Name:        typeName,
		Description: "Behaves as its payload says: progress steps, a gate, failures, a result.",
		Queue:       Queue,
		Timeout:     time.Minute,
		Handle:      k.handle,
	})
}

func (k *kit) handle(ctx context.Context, job *jobs.Job, p runPayload) (runResult, error) {
	for i := 1; i <= p.Steps; i++ {
		if err := job.Progress(ctx, i*100/p.Steps, fmt.Sprintf("step %d of %d", i, p.Steps)); err != nil {
			return runResult{}, err
		}
	}
	if p.Gate {
		k.started <- job.ID
		select {
		case <-k.release:
		case <-ctx.Done():
			k.cancelled <- context.Cause(ctx)
			return runResult{}, ctx.Err()
		}
	}
	if job.Attempt <= p.FailTimes {
		err := fmt.Errorf("planned failure %d", job.Attempt)
		if p.Permanent {
			err = jobs.Permanent(err)
		}
		return runResult{}, err
	}
	return runResult{Result: p.Result, Attempt: job.Attempt}, nil
}

// newJob is a job of the suite's type for tenant with payload p.
func newJob(tenant string, p string) store.NewJob {
	return store.NewJob{
		Tenant: tenant, Type: typeName, Queue: Queue, Payload: []byte(p), MaxAttempts: 3, Timeout: time.Minute,
	}
}

// create creates nj and returns its record.
func (k *kit) create(t *testing.T, nj store.NewJob) *store.Record {
	t.Helper()
	rec, existed, err := k.s.Create(k.ctx, nj)
	require.NoError(t, err)
	require.False(t, existed)
	require.NotEmpty(t, rec.ID)
	return rec
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("not within %s: %s", waitTimeout, fmt.Sprintf(msg, args...))
		case <-tick.C:
		}
	}
}

// waitState waits until job id of tenant is in one of states and returns
// its record.
func (k *kit) waitState(t *testing.T, tenant, id string, states ...store.State) *store.Record {
	t.Helper()
	var rec *store.Record
	waitFor(t, func() bool {
		var err error
		rec, err = k.s.Get(k.ctx, tenant, id)
		require.NoError(t, err)
		for _, s := range states {
			if rec.State == s {
				return true
			}
		}
		return false
	}, "job %s reaches %v; last state %s", id, states, stateOf(rec))
	return rec
}

func stateOf(rec *store.Record) store.State {
	if rec == nil {
		return ""
	}
	return rec.State
}

// receive waits for a value from ch.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("no %s within %s", what, waitTimeout)
		panic("unreachable")
	}
}
