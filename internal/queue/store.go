package queue

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
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
	metrics     *Metrics
	wakeups     *wakeups // tells idle workers about new jobs (wakeup.go)
	now         func() time.Time
	watch       watchPool // connections for blocking watch reads (watch.go)
}

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
}

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
		metrics:     o.Metrics,
		wakeups:     newWakeups(rdb),
		now:         time.Now,
	}
}

// NewJob is a validated create request.
type NewJob struct {
	// ID is normally empty (the store assigns a time-ordered id); callers
	// that need exactly-once creation pass a deterministic one.
	ID           string
	Tenant       string
	Type         string
	Queue        string
	Payload      json.RawMessage
	Labels       map[string]string
	MaxAttempts  int
	Timeout      time.Duration
	ScheduleTime time.Time
	RetryPolicy  RetryPolicy
	// IdempotencyKey and RequestHash make the create idempotent within the
	// tenant: see Create.
	IdempotencyKey string
	RequestHash    string
}

// Create stores and enqueues a job. The record is written before the task
// is enqueued, so a worker that picks the task up at once always finds it.
//
// With an idempotency key, the first request claims the key (SET NX) and
// creates the job; a later request with the same key and request hash gets
// the original record and existed = true; with another hash it gets an
// *IdempotencyConflictError.
func (s *Store) Create(ctx context.Context, nj NewJob) (rec *Record, existed bool, err error) {
	if nj.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, false, fmt.Errorf("new job id: %w", err)
		}
		nj.ID = id.String()
	}
	if nj.IdempotencyKey != "" {
		claimed, orig, err := s.claimIdempotencyKey(ctx, nj)
		if err != nil || !claimed {
			return orig, orig != nil, err
		}
		defer func() {
			if err != nil { // let a retry of the request try again
				if delErr := s.rdb.Del(context.WithoutCancel(ctx), idemKey(nj.Tenant, nj.IdempotencyKey)).Err(); delErr != nil {
					s.log.ErrorContext(ctx, "release idempotency key", "job_id", nj.ID, "error", delErr)
				}
			}
		}()
	}
	rec, fields := s.newRecord(nj)
	var created *redis.Cmd
	var waiting *redis.IntCmd
	err = s.pipelined(ctx, func(pipe redis.Pipeliner) {
		created = createScript.EvalSha(ctx, pipe, jobKeys(rec.ID), append([]any{micros(rec.CreateTime), string(rec.State), rec.Tenant}, fields...)...)
		s.addWrites(ctx, pipe, rec)
		waiting = pipe.ZCard(ctx, waitingKey(rec.Tenant))
	})
	if err != nil {
		return nil, false, fmt.Errorf("write job record: %w", err)
	}
	if n, _ := created.Int(); n == 0 {
		// A deterministic id that exists already: the job was created
		// before. The pipeline's ZADD NX left its index entry alone, but put
		// it back in the waiting set if it had started: undo that.
		existing, err := s.Get(ctx, nj.Tenant, nj.ID)
		if err != nil {
			return nil, false, err
		}
		if existing.State != StatePending && existing.State != StateScheduled {
			if err := s.rdb.ZRem(ctx, waitingKey(nj.Tenant), nj.ID).Err(); err != nil {
				return nil, false, fmt.Errorf("fix waiting set: %w", err)
			}
		}
		return existing, true, nil
	}
	if s.maxWaiting > 0 && waiting.Val() > int64(s.maxWaiting) {
		s.remove(context.WithoutCancel(ctx), rec)
		return nil, false, &QuotaError{Limit: s.maxWaiting}
	}
	if err := s.enqueue(ctx, rec); err != nil {
		// Without its task the record would stay PENDING forever.
		s.remove(context.WithoutCancel(ctx), rec)
		return nil, false, err
	}
	s.metrics.JobCreated(rec.Type, rec.Queue)
	return rec, false, nil
}

func (s *Store) pipelined(ctx context.Context, build func(redis.Pipeliner)) error {
	return pipelined(ctx, s.rdb, build)
}

// claimIdempotencyKey returns claimed = true when this request owns the
// key, or the original job when an identical request came first.
func (s *Store) claimIdempotencyKey(ctx context.Context, nj NewJob) (bool, *Record, error) {
	key := idemKey(nj.Tenant, nj.IdempotencyKey)
	val := nj.ID + " " + nj.RequestHash
	ok, err := s.rdb.SetNX(ctx, key, val, s.idemWindow).Result()
	if err != nil {
		return false, nil, fmt.Errorf("claim idempotency key: %w", err)
	}
	if ok {
		return true, nil, nil
	}
	prev, err := s.rdb.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) { // expired or released in between: try once more
		if ok, err = s.rdb.SetNX(ctx, key, val, s.idemWindow).Result(); err != nil || ok {
			return ok, nil, err
		}
		if prev, err = s.rdb.Get(ctx, key).Result(); err != nil {
			return false, nil, fmt.Errorf("read idempotency key: %w", err)
		}
	} else if err != nil {
		return false, nil, fmt.Errorf("read idempotency key: %w", err)
	}
	prevID, prevHash, _ := strings.Cut(prev, " ")
	if prevHash != nj.RequestHash {
		return false, nil, &IdempotencyConflictError{Key: nj.IdempotencyKey, JobID: prevID}
	}
	// The first request may still be writing the record: wait for it.
	deadline := s.now().Add(5 * time.Second)
	for {
		rec, err := s.Get(ctx, nj.Tenant, prevID)
		if err == nil {
			return false, rec, nil
		}
		if !errors.Is(err, ErrNotFound) || s.now().After(deadline) {
			return false, nil, fmt.Errorf("read job of idempotency key: %w", err)
		}
		select {
		case <-ctx.Done():
			return false, nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// newRecord builds the record of a new job and its hash fields (without
// tenant, which the create script writes).
func (s *Store) newRecord(nj NewJob) (*Record, []any) {
	now := s.now().UTC().Truncate(time.Microsecond)
	rec := &Record{
		ID:             nj.ID,
		Tenant:         nj.Tenant,
		Type:           nj.Type,
		Queue:          nj.Queue,
		State:          StatePending,
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
		rec.State = StateScheduled
		rec.ScheduleTime = nj.ScheduleTime.UTC().Truncate(time.Microsecond)
	}
	fields := []any{
		fType, rec.Type,
		fQueue, rec.Queue,
		fState, string(rec.State),
		fPayload, string(rec.Payload),
		fMaxAttempts, rec.MaxAttempts,
		fAttempts, 0,
		fTimeoutMS, rec.Timeout.Milliseconds(),
		fCreate, micros(now),
		fUpdate, micros(now),
	}
	if !rec.ScheduleTime.IsZero() {
		fields = append(fields, fSchedule, micros(rec.ScheduleTime))
	}
	if len(rec.Labels) > 0 {
		b, _ := json.Marshal(rec.Labels) // map[string]string always encodes
		fields = append(fields, fLabels, string(b))
	}
	if !rec.RetryPolicy.IsZero() {
		fields = append(fields, fRetry, rec.RetryPolicy.encode())
	}
	if rec.IdempotencyKey != "" {
		fields = append(fields, fIdemKey, rec.IdempotencyKey)
	}
	return rec, fields
}

// task builds the asynq task of a record. Its headers carry ctx's trace
// context to the worker (see observe.go).
func (s *Store) task(ctx context.Context, rec *Record) (*asynq.Task, []asynq.Option) {
	headers := map[string]string{
		headerTimeout: strconv.FormatInt(rec.Timeout.Milliseconds(), 10),
		headerTenant:  rec.Tenant,
	}
	if !rec.RetryPolicy.IsZero() {
		headers[headerRetry] = rec.RetryPolicy.encode()
	}
	opts := []asynq.Option{
		asynq.TaskID(rec.ID),
		asynq.Queue(rec.Queue),
		asynq.MaxRetry(rec.MaxAttempts - 1),
		// asynq keeps timeouts in whole seconds; the exact timeout travels
		// in a header and the worker enforces it. asynq's, rounded up and
		// two seconds later, is only the backstop.
		asynq.Timeout(rec.Timeout.Truncate(time.Second) + 2*time.Second),
	}
	if rec.State == StateScheduled {
		// asynq schedules with whole-second precision and may release a
		// task up to a second early; the worker holds it until this exact
		// time, so jobs start on time rather than up to 1s early or late.
		headers[headerNotBefore] = strconv.FormatInt(rec.ScheduleTime.UnixMicro(), 10)
		opts = append(opts, asynq.ProcessAt(rec.ScheduleTime))
	}
	annotateTask(ctx, headers, rec.ScheduleTime, s.now())
	return asynq.NewTaskWithHeaders(rec.Type, rec.Payload, headers), opts
}

func (s *Store) enqueue(ctx context.Context, rec *Record) error {
	task, opts := s.task(ctx, rec)
	if _, err := s.client.EnqueueContext(ctx, task, opts...); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue job: %w", err)
	}
	if rec.State != StateScheduled {
		s.wakeups.add(rec.Queue)
	}
	return nil
}

// addWrites queues the index and quota writes of a new job.
func (s *Store) addWrites(ctx context.Context, pipe redis.Pipeliner, rec *Record) {
	// NX: for an id that exists already (see Create) the original entries stay.
	score := float64(rec.CreateTime.UnixMicro())
	pipe.ZAddNX(ctx, indexKey(rec.Tenant), redis.Z{Score: score, Member: rec.ID})
	pipe.ZAddNX(ctx, waitingKey(rec.Tenant), redis.Z{Score: score, Member: rec.ID})
}

// remove deletes a job that could not be enqueued.
func (s *Store) remove(ctx context.Context, rec *Record) {
	pipe := s.rdb.Pipeline()
	pipe.Del(ctx, jobKeys(rec.ID)...)
	pipe.ZRem(ctx, indexKey(rec.Tenant), rec.ID)
	pipe.ZRem(ctx, waitingKey(rec.Tenant), rec.ID)
	if _, err := pipe.Exec(ctx); err != nil {
		s.log.ErrorContext(ctx, "remove record of job that failed to enqueue", "job_id", rec.ID, "error", err)
	}
}

// CreateResult is the outcome of one item of CreateMany.
type CreateResult struct {
	Record  *Record
	Existed bool
	Err     error
}

// CreateMany creates jobs with far fewer round trips than Create per job:
// all records and index entries go in one pipeline, then the tasks are
// enqueued concurrently. Jobs with idempotency keys take the Create path.
// With atomic, a failure of any item removes the jobs already created and
// every item reports an error.
func (s *Store) CreateMany(ctx context.Context, jobs []NewJob, atomic bool) []CreateResult {
	results := make([]CreateResult, len(jobs))
	var plain []int
	for i, nj := range jobs {
		if nj.IdempotencyKey != "" && !atomic {
			rec, existed, err := s.Create(ctx, nj)
			results[i] = CreateResult{Record: rec, Existed: existed, Err: err}
			continue
		}
		plain = append(plain, i)
	}
	recs := make([]*Record, len(jobs))
	fields := make([][]any, len(jobs))
	for _, i := range plain {
		nj := jobs[i]
		if nj.ID == "" {
			id, err := uuid.NewV7()
			if err != nil {
				results[i].Err = fmt.Errorf("new job id: %w", err)
				continue
			}
			nj.ID = id.String()
		}
		recs[i], fields[i] = s.newRecord(nj)
	}
	waiting := map[string]*redis.IntCmd{}
	err := s.pipelined(ctx, func(pipe redis.Pipeliner) {
		for _, i := range plain {
			if rec := recs[i]; rec != nil {
				createScript.EvalSha(ctx, pipe, jobKeys(rec.ID), append([]any{micros(rec.CreateTime), string(rec.State), rec.Tenant}, fields[i]...)...)
				s.addWrites(ctx, pipe, rec)
			}
		}
		for _, i := range plain {
			if rec := recs[i]; rec != nil && waiting[rec.Tenant] == nil {
				waiting[rec.Tenant] = pipe.ZCard(ctx, waitingKey(rec.Tenant))
			}
		}
	})
	if err != nil {
		for _, i := range plain {
			results[i].Err = fmt.Errorf("write job records: %w", err)
		}
		return results
	}
	if s.maxWaiting > 0 {
		for tenant, n := range waiting {
			if n.Val() <= int64(s.maxWaiting) {
				continue
			}
			for _, i := range plain {
				if rec := recs[i]; rec != nil && rec.Tenant == tenant {
					s.remove(context.WithoutCancel(ctx), rec)
					recs[i] = nil
					results[i].Err = &QuotaError{Limit: s.maxWaiting}
				}
			}
		}
	}
	const parallel = 16
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, i := range plain {
		if recs[i] == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := s.enqueue(ctx, recs[i]); err != nil {
				results[i].Err = err
				s.remove(context.WithoutCancel(ctx), recs[i])
				return
			}
			results[i].Record = recs[i]
		}()
	}
	wg.Wait()
	if atomic {
		var failed error
		for _, i := range plain {
			if results[i].Err != nil {
				failed = results[i].Err
				break
			}
		}
		if failed != nil {
			for _, i := range plain {
				if r := results[i].Record; r != nil {
					_ = s.inspector.DeleteTask(r.Queue, r.ID)
					s.remove(context.WithoutCancel(ctx), r)
					results[i] = CreateResult{Err: fmt.Errorf("not created: another item failed: %w", failed)}
				}
			}
		}
	}
	for _, i := range plain {
		if r := results[i]; r.Err == nil && r.Record != nil && !r.Existed {
			s.metrics.JobCreated(r.Record.Type, r.Record.Queue)
		}
	}
	return results
}

// Get returns the record of job id of tenant, or ErrNotFound (also for
// another tenant's job, so ids cannot be probed).
func (s *Store) Get(ctx context.Context, tenant, id string) (*Record, error) {
	pipe := s.rdb.Pipeline()
	hget := pipe.HGetAll(ctx, jobKey(id))
	errs := pipe.LRange(ctx, errorsKey(id), 0, -1)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read job record: %w", err)
	}
	h := hget.Val()
	if len(h) == 0 || h[fTenant] != tenant {
		return nil, ErrNotFound
	}
	return decodeRecord(id, h, errs.Val(), s.now())
}

// Cancel cancels a job that has not finished. A waiting job is CANCELLED
// at once and its task removed; for a RUNNING job the record is CANCELLED
// and the worker running it is told to stop the handler. A finished job
// gives a *StateError.
func (s *Store) Cancel(ctx context.Context, tenant, id, reason, by string) (*Record, error) {
	now := s.now()
	retention := max(int64(s.retention/time.Second), 1)
	res, err := cancelScript.Run(ctx, s.rdb, jobKeys(id), tenant, micros(now), retention,
		micros(now.Add(time.Duration(retention)*time.Second)), reason, by).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("cancel job: %w", err)
	}
	ok, _ := res[0].(int64)
	prev := State(fmt.Sprint(res[1]))
	if ok == 0 {
		return nil, &StateError{Op: "cancel", State: prev}
	}
	if err := s.rdb.ZRem(ctx, waitingKey(tenant), id).Err(); err != nil {
		s.log.WarnContext(ctx, "remove cancelled job from waiting set", "job_id", id, "error", err)
	}
	rec, err := s.Get(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	s.metrics.JobCancelled(rec.Type, rec.Queue)
	if prev == StateRunning {
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

// Retry runs a FAILED or CANCELLED job again with the same id and a fresh
// attempt budget; attempt errors are kept. Other states give *StateError.
func (s *Store) Retry(ctx context.Context, tenant, id string) (*Record, error) {
	res, err := retryScript.Run(ctx, s.rdb, jobKeys(id), tenant, micros(s.now())).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("retry job: %w", err)
	}
	ok, _ := res[0].(int64)
	prev := State(fmt.Sprint(res[1]))
	if ok == 0 {
		return nil, &StateError{Op: "retry", State: prev}
	}
	if err := s.rdb.ZAdd(ctx, waitingKey(tenant), redis.Z{Score: float64(s.now().UnixMicro()), Member: id}).Err(); err != nil {
		s.log.WarnContext(ctx, "add retried job to waiting set", "job_id", id, "error", err)
	}
	rec, err := s.Get(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	// A failed job's task is archived by asynq, a cancelled one may linger:
	// the new task reuses the id, so the old one must go first.
	if err := s.inspector.DeleteTask(rec.Queue, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) {
		s.log.WarnContext(ctx, "delete old task of retried job", "job_id", id, "error", err)
	}
	if err := s.enqueue(ctx, rec); err != nil {
		// Put the job back as it was so the client can retry the request.
		if rerr := s.rdb.HSet(context.WithoutCancel(ctx), jobKey(id), fState, string(prev)).Err(); rerr != nil {
			s.log.ErrorContext(ctx, "restore state of job that failed to re-enqueue", "job_id", id, "error", rerr)
		}
		return nil, err
	}
	return rec, nil
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
