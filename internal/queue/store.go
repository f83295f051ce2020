package queue

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/jobforge/jobforge/internal/store"
)

// Store creates jobs and reads and changes their records. It is safe for
// concurrent use.
type Store struct {
	rdb         redis.UniversalClient
	client      *asynq.Client
	inspector   *asynq.Inspector
	log         *slog.Logger
	retention   time.Duration
	idemWindow  time.Duration
	maxWaiting  int
	maxWatchers int
	replicas    int           // WAIT for this many replicas after creates
	replicaWait time.Duration // at most this long
	metrics     *Metrics
	now         func() time.Time
	watch       watchPool   // connections for blocking watch reads (watch.go)
	known       knownQueues // the queues a job can be in (locate.go)
	registered  sync.Map    // queue → when registerQueue last added it
	jobQueues   jobQueues   // job id → queue, of jobs seen lately (locate.go)
	creates     createQueue // creates waiting for a pipeline (coalesce.go)
}

// Store is the Redis implementation of the storage seam; it passes the
// seam's conformance suite (conformance_test.go).
var _ store.Store = (*Store)(nil)

// StoreOptions configures a Store.
type StoreOptions struct {
	// Retention is how long finished jobs stay readable (cancelled jobs are
	// finished by the API, so the store needs it too).
	Retention time.Duration
	// IdempotencyWindow is how long idempotency keys are remembered.
	IdempotencyWindow time.Duration
	// MaxWaitingPerTenant caps a tenant's pending plus scheduled jobs;
	// 0 means no cap.
	MaxWaitingPerTenant int
	// Metrics counts created and cancelled jobs; nil counts nothing.
	Metrics *Metrics
	// MaxWatchers bounds concurrent watches (DefaultMaxWatchers if 0).
	MaxWatchers int
	// MinReplicas makes Create and CreateMany wait, in the same round
	// trip, until that many replicas have the write (Redis WAIT), so that
	// an acknowledged job survives a failover; 0 does not wait. A write
	// that fewer replicas confirmed within ReplicaTimeout fails with an
	// error matching store.ErrNotReplicated.
	MinReplicas int
	// ReplicaTimeout bounds the wait for replicas (DefaultReplicaTimeout
	// if 0). It must stay below the client's read timeout (1 s).
	ReplicaTimeout time.Duration
}

// DefaultReplicaTimeout is how long a create waits for its replicas unless
// StoreOptions.ReplicaTimeout says otherwise.
const DefaultReplicaTimeout = 500 * time.Millisecond

// NewStore returns a Store on rdb. The caller owns rdb and closes it after
// the Store.
func NewStore(rdb redis.UniversalClient, log *slog.Logger, opts ...StoreOptions) *Store {
	o := StoreOptions{Retention: 24 * time.Hour, IdempotencyWindow: 24 * time.Hour}
	if len(opts) > 0 {
		if opts[0].Retention > 0 {
			o.Retention = opts[0].Retention
		}
		if opts[0].IdempotencyWindow > 0 {
			o.IdempotencyWindow = opts[0].IdempotencyWindow
		}
		o.MaxWaitingPerTenant = opts[0].MaxWaitingPerTenant
		o.MaxWatchers = opts[0].MaxWatchers
		o.Metrics = opts[0].Metrics
		o.MinReplicas = opts[0].MinReplicas
		o.ReplicaTimeout = opts[0].ReplicaTimeout
	}
	return &Store{
		rdb:         rdb,
		client:      asynq.NewClientFromRedisClient(rdb),
		inspector:   asynq.NewInspectorFromRedisClient(rdb),
		log:         log,
		retention:   o.Retention,
		idemWindow:  o.IdempotencyWindow,
		maxWaiting:  o.MaxWaitingPerTenant,
		maxWatchers: cmp.Or(o.MaxWatchers, DefaultMaxWatchers),
		replicas:    o.MinReplicas,
		replicaWait: cmp.Or(o.ReplicaTimeout, DefaultReplicaTimeout),
		metrics:     o.Metrics,
		now:         time.Now,
	}
}

// Create stores and enqueues a job in one round trip: createScript writes
// the idempotency key, the record, its index and quota entries and the
// asynq task together, so a crash at any point leaves either all of them or
// none. Concurrent creates share round trips (coalesce.go).
//
// With an idempotency key, the first request claims the key and creates the
// job; a later request with the same key and request hash gets the
// original record and existed = true; with another hash it gets an
// *IdempotencyConflictError.
func (s *Store) Create(ctx context.Context, nj store.NewJob) (rec *store.Record, existed bool, err error) {
	defer markUnavailable(&err)
	nj, err = withID(nj)
	if err != nil {
		return nil, false, err
	}
	res := s.create(ctx, s.newWrite(ctx, nj, &tenantKeys{}))
	if res.Err != nil {
		return nil, false, res.Err
	}
	return res.Record, res.Existed, nil
}

// waitReplicas queues a WAIT for the store's replicas after the writes in
// pipe, on the same connection, so it covers them; nil when the store does
// not wait.
func (s *Store) waitReplicas(ctx context.Context, pipe redis.Pipeliner) *redis.Cmd {
	if s.replicas == 0 {
		return nil
	}
	return pipe.Do(ctx, "wait", s.replicas, s.replicaWait.Milliseconds())
}

// writeFailed reports whether the pipeline of a create failed for a reason
// other than its WAIT, which replicated reports on its own.
func writeFailed(err error, wait *redis.Cmd) bool {
	return err != nil && (wait == nil || !errors.Is(err, wait.Err()))
}

// replicated checks the reply of waitReplicas for n jobs just written.
func (s *Store) replicated(wait *redis.Cmd, n int) error {
	if wait == nil {
		return nil
	}
	got, err := wait.Int64()
	if err == nil && got >= int64(s.replicas) {
		return nil
	}
	s.metrics.NotReplicated(n)
	if err != nil {
		return &unavailableError{fmt.Errorf("%w: wait for %d replicas: %w", store.ErrNotReplicated, s.replicas, err)}
	}
	return &unavailableError{fmt.Errorf("%w: %d of %d replicas confirmed the write within %s", store.ErrNotReplicated, got, s.replicas, s.replicaWait)}
}

// withID gives a job without an id a new time-ordered one.
func withID(nj store.NewJob) (store.NewJob, error) {
	if nj.ID != "" {
		return nj, nil
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nj, fmt.Errorf("new job id: %w", err)
	}
	nj.ID = id.String()
	return nj, nil
}

// created turns createScript's reply for one job into Create's result.
func (s *Store) created(ctx context.Context, w *jobWrite, reply any) (*store.Record, bool, error) {
	if prev, ok := reply.(string); ok { // the idempotency key is taken
		prevID, prevHash, _ := strings.Cut(prev, " ")
		if prevHash != w.nj.RequestHash {
			return nil, false, &store.IdempotencyConflictError{Key: w.nj.IdempotencyKey, JobID: prevID}
		}
		// The key and its job were written together: the job exists unless
		// its retention ran out before the key's window.
		existing, err := s.Get(ctx, w.rec.Tenant, prevID)
		if err != nil {
			return nil, false, fmt.Errorf("read job of idempotency key: %w", err)
		}
		return existing, true, nil
	}
	code, ok := reply.(int64)
	if !ok {
		return nil, false, fmt.Errorf("write job: unexpected reply %v", reply)
	}
	switch code {
	case 1:
		s.jobQueues.put(w.rec.ID, w.rec.Queue)
		s.metrics.JobCreated(w.rec.Type, w.rec.Queue)
		return w.rec, false, nil
	case 0: // a deterministic id that exists already: the job was created before
		existing, err := s.Get(ctx, w.rec.Tenant, w.rec.ID)
		if err != nil {
			return nil, false, err
		}
		return existing, true, nil
	case 3:
		return nil, false, &store.QuotaError{Limit: s.maxWaiting}
	case 4:
		return nil, false, fmt.Errorf("write job: an asynq task with id %s exists without a job record", w.rec.ID)
	default:
		return nil, false, fmt.Errorf("write job: unexpected reply %d", code)
	}
}

func (s *Store) pipelined(ctx context.Context, build func(redis.Pipeliner)) error {
	return pipelined(ctx, s.rdb, build)
}

// jobWrite is one job of a createScript call: a new job's record, its
// keys and its part of the script's arguments. The keys and the fixed
// arguments are fields that runCreates passes by pointer: go-redis writes a
// *string, *int or *int64 as the value it points to, and an interface
// holding a pointer needs no allocation of its own, where boxing each of
// the 17 values would allocate most of them.
type jobWrite struct {
	nj  store.NewJob
	rec *store.Record

	keys [6]string // createScript's KEYS of the job, in its order

	// createScript's per-job arguments that are not record fields
	// (appendArgs lists all createJobArgs of them in the script's order).
	nExtra    int // len(extra)
	nowUS     int64
	idemVal   string
	msg       argBytes // the asynq task message
	processAt string
	timeoutMS int64
	extra     []any // extra record field names and values
}

// argBytes is a byte slice go-redis writes through a pointer.
type argBytes []byte

func (b *argBytes) MarshalBinary() ([]byte, error) { return *b, nil }

// tenantKeys are the keys a job shares with the other jobs of its queue and
// tenant: a batch's jobs, which mostly share them, build them once.
type tenantKeys struct{ queue, tenant, index, waiting, pending string }

func (k *tenantKeys) of(q, tenant string) *tenantKeys {
	if k.queue != q || k.tenant != tenant || k.index == "" {
		*k = tenantKeys{q, tenant, indexKey(q, tenant), waitingKey(q, tenant), asynqPendingKey(q)}
	}
	return k
}

// newWrite builds the write of a new job; shared holds the keys of the
// last queue and tenant a write was built for.
func (s *Store) newWrite(ctx context.Context, nj store.NewJob, shared *tenantKeys) *jobWrite {
	rec := s.newRecord(nj)
	q := rec.Queue
	w := &jobWrite{nj: nj, rec: rec, nowUS: rec.CreateTime.UnixMicro(),
		timeoutMS: rec.Timeout.Milliseconds(), msg: s.task(ctx, rec).encode()}
	recKey := jobKey(q, rec.ID)
	idemKeyName := recKey
	if nj.IdempotencyKey != "" {
		idemKeyName, w.idemVal = idemKey(q, nj.Tenant, nj.IdempotencyKey), nj.ID+" "+nj.RequestHash
	}
	tk := shared.of(q, rec.Tenant)
	taskList := tk.pending
	if rec.State == store.StateScheduled {
		// asynq schedules with whole-second precision and may release a
		// task up to a second early; the worker holds it until the exact
		// time in its header, so jobs start on time.
		taskList, w.processAt = asynqScheduledKey(q), strconv.FormatInt(rec.ScheduleTime.Unix(), 10)
	}
	w.keys = [6]string{recKey, tk.index, tk.waiting, idemKeyName, asynqTaskKey(q, rec.ID), taskList}
	if !rec.ScheduleTime.IsZero() {
		w.extra = append(w.extra, fSchedule, rec.ScheduleTime.UnixMicro())
	}
	if len(rec.Labels) > 0 {
		b, _ := json.Marshal(rec.Labels) // map[string]string always encodes
		w.extra = append(w.extra, fLabels, b)
	}
	if !rec.RetryPolicy.IsZero() {
		w.extra = append(w.extra, fRetry, rec.RetryPolicy.String())
	}
	if rec.IdempotencyKey != "" {
		w.extra = append(w.extra, fIdemKey, rec.IdempotencyKey)
	}
	w.nExtra = len(w.extra)
	return w
}

// appendKeys appends the job's createScript keys to a command, as pointers
// into w.
func (w *jobWrite) appendKeys(cmd []any) []any {
	for i := range w.keys {
		cmd = append(cmd, &w.keys[i])
	}
	return cmd
}

// appendArgs appends the job's createScript arguments to a command, as
// pointers into w and its record.
func (w *jobWrite) appendArgs(cmd []any) []any {
	rec := w.rec
	cmd = append(cmd, &w.nExtra, &w.nowUS, &w.idemVal, &w.msg, &rec.ID, &w.processAt,
		&rec.Tenant, &rec.Type, (*argBytes)(&rec.Payload), &rec.MaxAttempts, &w.timeoutMS)
	return append(cmd, w.extra...)
}

// createJobArgs is the number of createScript arguments of a job before
// its extra record fields.
const createJobArgs = 11

// maxJobsPerCreateCall caps the jobs of one createScript call, so that one
// call holds Redis for a millisecond or two, not longer.
const maxJobsPerCreateCall = 64

// runCreates queues one createScript call writing ws (all of one queue,
// at least one job) on pipe.
func (s *Store) runCreates(ctx context.Context, pipe redis.Pipeliner, ws []*jobWrite) *redis.Cmd {
	// The command is built as one slice, keys and arguments in place:
	// Script.EvalSha would copy both into a new one (and box each key).
	n, nkeys := 3+5, 0
	for _, w := range ws {
		n += len(w.keys) + createJobArgs + len(w.extra)
		nkeys += len(w.keys)
	}
	cmd := make([]any, 0, n)
	cmd = append(cmd, "evalsha", createScript.Hash(), nkeys)
	for _, w := range ws {
		cmd = w.appendKeys(cmd)
	}
	cmd = append(cmd, s.idemWindow.Milliseconds(), s.maxWaiting, asynqPendingSince(s.now()), ws[0].rec.Queue, wakeChannel)
	for _, w := range ws {
		cmd = w.appendArgs(cmd)
	}
	return pipe.Do(ctx, cmd...)
}

// createReplies splits the reply of a createScript call for n jobs.
func createReplies(cmd *redis.Cmd, n int) ([]any, error) {
	res, err := cmd.Slice()
	if err != nil {
		return nil, err
	}
	if len(res) != n {
		return nil, fmt.Errorf("%d replies for %d jobs", len(res), n)
	}
	return res, nil
}

// newRecord builds the record of a new job (newWrite turns it into
// createScript's arguments).
func (s *Store) newRecord(nj store.NewJob) *store.Record {
	now := s.now().UTC().Truncate(time.Microsecond)
	rec := &store.Record{
		ID:             nj.ID,
		Tenant:         nj.Tenant,
		Type:           nj.Type,
		Queue:          nj.Queue,
		State:          store.StatePending,
		Payload:        nj.Payload,
		Labels:         nj.Labels,
		MaxAttempts:    nj.MaxAttempts,
		Timeout:        nj.Timeout,
		RetryPolicy:    nj.RetryPolicy,
		IdempotencyKey: nj.IdempotencyKey,
		CreateTime:     now,
		UpdateTime:     now,
	}
	if nj.ScheduleTime.After(now) {
		rec.State = store.StateScheduled
		rec.ScheduleTime = nj.ScheduleTime.UTC().Truncate(time.Microsecond)
	}
	return rec
}

// asynqRetryBudget is the retry count every task gets in asynq. jobforge
// decides itself when a job has used up its attempts (the record's
// max_attempts, counting only attempts that ended with an outcome): asynq
// must never archive a task behind its back, e.g. after a crash that
// asynq would count as a failed attempt. The API allows at most 100.
const asynqRetryBudget = 1000

// task builds the asynq task of a record. Its headers carry ctx's trace
// context to the worker (see observe.go).
func (s *Store) task(ctx context.Context, rec *store.Record) asynqTask {
	headers := make(taskHeaders, 0, 8)
	headers.Set(headerTimeout, strconv.FormatInt(rec.Timeout.Milliseconds(), 10))
	headers.Set(headerTenant, rec.Tenant)
	if !rec.RetryPolicy.IsZero() {
		headers.Set(headerRetry, rec.RetryPolicy.String())
	}
	if rec.State == store.StateScheduled {
		headers.Set(headerNotBefore, strconv.FormatInt(rec.ScheduleTime.UnixMicro(), 10))
	}
	annotateTask(ctx, &headers, rec.ScheduleTime, s.now())
	return asynqTask{
		Type:    rec.Type,
		Payload: rec.Payload,
		Headers: headers,
		ID:      rec.ID,
		Queue:   rec.Queue,
		Retry:   asynqRetryBudget,
		// asynq keeps timeouts in whole seconds; the exact timeout travels
		// in a header and the worker enforces it. asynq's, rounded down and
		// two seconds later, is only the backstop.
		Timeout: rec.Timeout.Truncate(time.Second) + 2*time.Second,
	}
}

// CreateMany creates jobs in one round trip: one createScript call per
// job, pipelined, so each job is written whole or not at all. With atomic,
// a failure of any item removes the jobs already created and every item
// reports an error.
func (s *Store) CreateMany(ctx context.Context, jobs []store.NewJob, atomic bool) []store.CreateResult {
	results := make([]store.CreateResult, len(jobs))
	writes := make([]*jobWrite, len(jobs))
	var keys tenantKeys
	for i, nj := range jobs {
		nj, err := withID(nj)
		if err != nil {
			results[i].Err = err
			continue
		}
		writes[i] = s.newWrite(ctx, nj, &keys)
	}
	s.writeAll(ctx, writes, results)
	for i := range results {
		markUnavailable(&results[i].Err)
	}
	if atomic {
		s.undoUnlessAll(ctx, results)
	}
	return results
}

// writeAll runs the writes (nil ones are skipped) in one pipeline and
// records each outcome in results. Where the store waits for replicas on a
// Cluster, each node's writes go in a pipeline of their own with that
// node's WAIT (writeClient), the pipelines side by side.
func (s *Store) writeAll(ctx context.Context, writes []*jobWrite, results []store.CreateResult) {
	groups := map[redis.UniversalClient][]int{}
	var order []redis.UniversalClient
	for i, w := range writes {
		if w == nil {
			continue
		}
		if err := s.registerQueue(ctx, w.rec.Queue); err != nil {
			results[i].Err = fmt.Errorf("write jobs: %w", err)
			writes[i] = nil
			continue
		}
		c, err := s.writeClient(ctx, w.rec.Queue)
		if err != nil {
			results[i].Err = fmt.Errorf("write jobs: %w", err)
			writes[i] = nil
			continue
		}
		if _, ok := groups[c]; !ok {
			order = append(order, c)
		}
		groups[c] = append(groups[c], i)
	}
	if len(order) == 1 {
		s.writeGroup(ctx, order[0], writes, groups[order[0]], results)
		return
	}
	var wg sync.WaitGroup
	for _, c := range order {
		wg.Go(func() { s.writeGroup(ctx, c, writes, groups[c], results) })
	}
	wg.Wait()
}

// writeGroup runs the writes at indexes idx in one pipeline on c: one
// createScript call per queue and up to maxJobsPerCreateCall jobs.
func (s *Store) writeGroup(ctx context.Context, c redis.UniversalClient, writes []*jobWrite, idx []int, results []store.CreateResult) {
	type call struct {
		idx []int // the writes' indexes in writes and results
		ws  []*jobWrite
		cmd *redis.Cmd
	}
	var calls []*call
	open := map[string]*call{} // the call of each queue still taking jobs
	for _, i := range idx {
		q := writes[i].rec.Queue
		cl := open[q]
		if cl == nil || len(cl.idx) == maxJobsPerCreateCall {
			cl = &call{}
			open[q] = cl
			calls = append(calls, cl)
		}
		cl.idx, cl.ws = append(cl.idx, i), append(cl.ws, writes[i])
	}
	var wait *redis.Cmd
	err := pipelined(ctx, c, func(pipe redis.Pipeliner) {
		for _, cl := range calls {
			cl.cmd = s.runCreates(ctx, pipe, cl.ws)
		}
		wait = s.waitReplicas(ctx, pipe)
	})
	if !writeFailed(err, wait) {
		err = nil
	}
	written := 0
	for _, cl := range calls {
		replies, cerr := []any(nil), err
		if cerr == nil {
			replies, cerr = createReplies(cl.cmd, len(cl.idx))
		}
		for k, i := range cl.idx {
			if cerr != nil {
				results[i].Err = fmt.Errorf("write jobs: %w", cerr)
				continue
			}
			rec, existed, err := s.created(ctx, writes[i], replies[k])
			results[i] = store.CreateResult{Record: rec, Existed: existed, Err: err}
			if err == nil {
				written++
			}
		}
	}
	if written == 0 {
		return
	}
	if err := s.replicated(wait, written); err != nil {
		for _, i := range idx {
			if results[i].Err == nil {
				results[i].Err = err // the Record stays, for undoUnlessAll
			}
		}
	}
}

// writeClient is the client a create in queue q is pipelined on: the
// store's own, except on a Cluster where creates wait for replicas — there
// WAIT must follow the writes on the connection of the node that took
// them, so the create goes to the queue's master directly.
func (s *Store) writeClient(ctx context.Context, q string) (redis.UniversalClient, error) {
	cc, ok := s.rdb.(*redis.ClusterClient)
	if !ok || s.replicas == 0 {
		return s.rdb, nil
	}
	node, err := cc.MasterForKey(ctx, queuePrefix(q))
	if err != nil {
		return nil, fmt.Errorf("find the master of queue %s: %w", q, err)
	}
	return node, nil
}

// queueRegisterEvery is how often a Store adds a queue it creates jobs in
// to asynq's set of queues.
const queueRegisterEvery = time.Minute

// registerQueue adds q to asynq's set of queues, as asynq's own enqueue
// does, at most every queueRegisterEvery per queue: the set has a Cluster
// slot of its own, so it stays out of the create's script. asynq's
// inspector, the queue UI and jobforge's recovery loop read the set;
// workers add their queues when they start.
func (s *Store) registerQueue(ctx context.Context, q string) error {
	now := s.now()
	if t, ok := s.registered.Load(q); ok && now.Sub(t.(time.Time)) < queueRegisterEvery {
		return nil
	}
	if err := s.rdb.SAdd(ctx, asynqAllQueues, q).Err(); err != nil {
		return fmt.Errorf("register queue %s: %w", q, err)
	}
	s.registered.Store(q, now)
	s.known.add(q)
	return nil
}

// undoUnlessAll makes an all-or-nothing batch nothing when an item failed:
// it removes the jobs the batch created and fails every item, each saying
// which failure stopped it.
func (s *Store) undoUnlessAll(ctx context.Context, results []store.CreateResult) {
	i := slices.IndexFunc(results, func(r store.CreateResult) bool { return r.Err != nil })
	if i < 0 {
		return
	}
	failed := results[i].Err
	var undo []*store.Record
	for i, r := range results {
		if r.Record != nil && !r.Existed {
			undo = append(undo, r.Record)
		}
		if r.Err == nil {
			results[i] = store.CreateResult{Err: fmt.Errorf("not created: another item failed: %w", failed)}
		}
	}
	s.remove(context.WithoutCancel(ctx), undo...)
}

// remove deletes jobs that were created but must not be (the rest of an
// all-or-nothing batch failed): records, events, index and quota entries,
// idempotency keys and tasks, in one round trip.
func (s *Store) remove(ctx context.Context, recs ...*store.Record) {
	if len(recs) == 0 {
		return
	}
	err := s.pipelined(ctx, func(pipe redis.Pipeliner) {
		for _, rec := range recs {
			q := rec.Queue
			idem := jobKey(q, rec.ID)
			if rec.IdempotencyKey != "" {
				idem = idemKey(q, rec.Tenant, rec.IdempotencyKey)
			}
			removeScript.EvalSha(ctx, pipe, []string{
				jobKey(q, rec.ID), eventsKey(q, rec.ID), errorsKey(q, rec.ID), indexKey(q, rec.Tenant), waitingKey(q, rec.Tenant), idem,
				asynqTaskKey(q, rec.ID), asynqPendingKey(q), asynqScheduledKey(q),
			}, rec.ID)
		}
	})
	if err != nil {
		s.log.ErrorContext(ctx, "remove jobs of a failed all-or-nothing batch", "jobs", len(recs), "error", err)
	}
}

// Get returns the record of job id of tenant, or ErrNotFound (also for
// another tenant's job, so ids cannot be probed). The job's keys are in its
// queue's slot, so Get reads the job in every known queue in one round
// trip (see locate.go).
func (s *Store) Get(ctx context.Context, tenant, id string) (_ *store.Record, err error) {
	defer markUnavailable(&err)
	return s.find(ctx, tenant, id)
}

// Cancel cancels a job that has not finished. A waiting job is CANCELLED
// at once and its task removed; for a RUNNING job the record is CANCELLED
// and the worker running it is told to stop the handler. A finished job
// gives a *StateError.
func (s *Store) Cancel(ctx context.Context, tenant, id, reason, by string) (_ *store.Record, err error) {
	defer markUnavailable(&err)
	found, err := s.find(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	q := found.Queue
	now := s.now()
	retention := max(int64(s.retention/time.Second), 1)
	res, err := cancelScript.Run(ctx, s.rdb, append(jobKeys(q, id), waitingKey(q, tenant)), tenant, micros(now), retention,
		micros(now.Add(time.Duration(retention)*time.Second)), reason, by, id).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("cancel job: %w", err)
	}
	ok, _ := res[0].(int64)
	prev := store.State(fmt.Sprint(res[1]))
	if ok == 0 {
		return nil, &store.StateError{Op: "cancel", State: prev}
	}
	rec, err := decodeRecord(id, hashReply(res[2]), stringsReply(res[3]), s.now())
	if err != nil {
		return nil, err
	}
	s.metrics.JobCancelled(rec.Type, rec.Queue)
	if prev == store.StateRunning {
		if err := s.rdb.Publish(ctx, cancelChannel, id).Err(); err != nil {
			// Workers also poll the state of their running jobs.
			s.log.WarnContext(ctx, "publish cancellation", "job_id", id, "error", err)
		}
		return rec, nil
	}
	// The worker would skip the task anyway; removing it keeps queues clean.
	if err := s.inspector.DeleteTask(rec.Queue, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
		s.log.DebugContext(ctx, "delete task of cancelled job", "job_id", id, "error", err)
	}
	return rec, nil
}

// hashReply turns a script's HGETALL reply into a map.
func hashReply(v any) map[string]string {
	fields, _ := v.([]any)
	h := make(map[string]string, len(fields)/2)
	for i := 0; i+1 < len(fields); i += 2 {
		h[fmt.Sprint(fields[i])] = fmt.Sprint(fields[i+1])
	}
	return h
}

// stringsReply turns a script's LRANGE reply into strings.
func stringsReply(v any) []string {
	items, _ := v.([]any)
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = fmt.Sprint(it)
	}
	return out
}

// Retry runs a FAILED or CANCELLED job again with the same id and a fresh
// attempt budget; attempt errors are kept. The record and the job's new
// task are written in one step. Other states give *StateError.
//
// The record of a job's last attempt changes a moment before its worker
// acknowledges the task; until then retryScript refuses to requeue the
// task, which the acknowledgement would remove. Retry waits that moment
// out (at most retryHeldFor, e.g. for a cancelled handler that has not
// returned yet) rather than refusing a job the caller sees finished.
func (s *Store) Retry(ctx context.Context, tenant, id string) (_ *store.Record, err error) {
	defer markUnavailable(&err)
	rec, err := s.Get(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	if rec.State != store.StateFailed && rec.State != store.StateCancelled {
		return nil, &store.StateError{Op: "retry", State: rec.State}
	}
	wait, cancel := context.WithTimeout(ctx, retryHeldFor)
	defer cancel()
	for {
		written, refused, held, err := s.retry(ctx, rec)
		switch {
		case err != nil:
			return nil, err
		case held && wait.Err() == nil:
			select {
			case <-wait.Done():
			case <-time.After(retryHeldPoll):
			}
			continue
		case refused != "":
			return nil, cmp.Or(ctx.Err(), error(&store.StateError{Op: "retry", State: refused}))
		}
		// The record as the retry wrote it (PENDING), not as a fast worker
		// may have changed it since; a FAILED or CANCELLED job has no
		// attempt running, so its attempt errors are the ones read above.
		retried, err := decodeRecord(id, written, nil, s.now())
		if err != nil {
			return nil, err
		}
		retried.AttemptErrors = rec.AttemptErrors
		return retried, nil
	}
}

// How long and how often Retry waits for a worker to let go of the task
// of a job's last attempt.
const (
	retryHeldFor  = 2 * time.Second
	retryHeldPoll = 10 * time.Millisecond
)

// retry runs retryScript for rec. refused is the state that keeps the job
// from being retried, if any; held says that state is the task still held
// by the worker of the last attempt.
func (s *Store) retry(ctx context.Context, rec *store.Record) (written map[string]string, refused store.State, held bool, err error) {
	pending := *rec
	pending.State, pending.ScheduleTime = store.StatePending, time.Time{}
	now, id, q := s.now(), rec.ID, rec.Queue
	if err := s.registerQueue(ctx, q); err != nil {
		return nil, "", false, fmt.Errorf("retry job: %w", err)
	}
	res, err := retryScript.Run(ctx, s.rdb, []string{
		jobKey(q, id), eventsKey(q, id), waitingKey(q, rec.Tenant), asynqTaskKey(q, id), asynqPendingKey(q),
		asynqArchivedKey(q), asynqRetryKey(q), asynqScheduledKey(q), asynqActiveKey(q),
	}, rec.Tenant, micros(now), s.task(ctx, &pending).encode(), id, q, asynqPendingSince(now), wakeChannel).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, "", false, store.ErrNotFound
	}
	if err != nil {
		return nil, "", false, fmt.Errorf("retry job: %w", err)
	}
	if ok, _ := res[0].(int64); ok == 1 {
		return hashReply(res[2]), "", false, nil
	}
	return nil, store.State(fmt.Sprint(res[1])), len(res) > 2, nil
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.rdb.Ping(ctx).Err()
}

// SharedSecret returns a random secret shared by every process using this
// Redis, created on first use. It keys page-token MACs, so tokens issued by
// one API replica verify on all.
func (s *Store) SharedSecret(ctx context.Context, name string) ([]byte, error) {
	key := keyPrefix + "secret:" + name
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	if err := s.rdb.SetNX(ctx, key, b, 0).Err(); err != nil {
		return nil, fmt.Errorf("create shared secret: %w", err)
	}
	v, err := s.rdb.Get(ctx, key).Bytes()
	if err != nil {
		return nil, fmt.Errorf("read shared secret: %w", err)
	}
	return v, nil
}
