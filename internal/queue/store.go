package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Store creates jobs and reads their records. It is safe for concurrent use.
type Store struct {
	rdb    redis.UniversalClient
	client *asynq.Client
	log    *slog.Logger
	now    func() time.Time
}

// NewStore returns a Store on rdb. The caller owns rdb and closes it after
// the Store.
func NewStore(rdb redis.UniversalClient, log *slog.Logger) *Store {
	return &Store{
		rdb:    rdb,
		client: asynq.NewClientFromRedisClient(rdb),
		log:    log,
		now:    time.Now,
	}
}

// NewJob is a validated create request.
type NewJob struct {
	Type         string
	Queue        string
	Payload      json.RawMessage
	Labels       map[string]string
	MaxAttempts  int
	Timeout      time.Duration
	ScheduleTime time.Time
}

// Create stores the job's record and enqueues it. The record is written
// first, so a worker that picks the task up at once always finds it.
func (s *Store) Create(ctx context.Context, nj NewJob) (*Record, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("new job id: %w", err)
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	rec := &Record{
		ID:          id.String(),
		Type:        nj.Type,
		Queue:       nj.Queue,
		State:       StatePending,
		Payload:     nj.Payload,
		Labels:      nj.Labels,
		MaxAttempts: nj.MaxAttempts,
		Timeout:     nj.Timeout,
		CreateTime:  now,
		UpdateTime:  now,
	}
	opts := []asynq.Option{
		asynq.TaskID(rec.ID),
		asynq.Queue(nj.Queue),
		asynq.MaxRetry(nj.MaxAttempts - 1),
		// asynq keeps timeouts in whole seconds; the exact timeout travels
		// in a header and the worker enforces it. asynq's, rounded up and a
		// second later, is only the backstop.
		asynq.Timeout(nj.Timeout.Truncate(time.Second) + 2*time.Second),
	}
	if nj.ScheduleTime.After(now) {
		rec.State = StateScheduled
		rec.ScheduleTime = nj.ScheduleTime.UTC().Truncate(time.Microsecond)
		opts = append(opts, asynq.ProcessAt(rec.ScheduleTime))
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
		b, err := json.Marshal(rec.Labels)
		if err != nil {
			return nil, fmt.Errorf("encode labels: %w", err)
		}
		fields = append(fields, fLabels, string(b))
	}
	key := jobKey(rec.ID)
	if err := s.rdb.HSet(ctx, key, fields...).Err(); err != nil {
		return nil, fmt.Errorf("write job record: %w", err)
	}
	task := asynq.NewTaskWithHeaders(rec.Type, rec.Payload, map[string]string{
		headerTimeout: strconv.FormatInt(nj.Timeout.Milliseconds(), 10),
	})
	if _, err := s.client.EnqueueContext(ctx, task, opts...); err != nil {
		// Without its task the record would stay PENDING forever.
		if delErr := s.rdb.Del(context.WithoutCancel(ctx), key).Err(); delErr != nil {
			s.log.ErrorContext(ctx, "remove record of job that failed to enqueue", "job_id", rec.ID, "error", delErr)
		}
		return nil, fmt.Errorf("enqueue job: %w", err)
	}
	return rec, nil
}

// Get returns the record of job id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (*Record, error) {
	h, err := s.rdb.HGetAll(ctx, jobKey(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("read job record: %w", err)
	}
	if len(h) == 0 {
		return nil, ErrNotFound
	}
	return decodeRecord(id, h, s.now())
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.rdb.Ping(ctx).Err()
}
