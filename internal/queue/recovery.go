package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Crash recovery.
//
// asynq recovers a task whose worker died only when the task's 30 s lease
// has run out and its recoverer, which looks once a minute, finds it; it
// then counts the crash as a failed attempt and archives the task when
// that was the last one. jobforge keeps a tighter promise: a crashed
// worker's jobs run again within seconds, and a crash never uses up an
// attempt.
//
//   - Heartbeat: every HeartbeatInterval each worker process writes its
//     expiry time (now + LostAfter) to the heartbeat set and extends the
//     asynq lease of every task it holds, from dequeue until the outcome is
//     recorded, to now + 30 s, as asynq's own heartbeat does every 5 s.
//   - Recovery: once a second, in exactly one worker process at a time (a
//     Redis lease), the recovery loop looks for leases not extended for
//     LostAfter and hands each such task to recoverScript, which puts the
//     task back in its queue (or fails the job as WORKER_LOST after
//     MaxLostAttempts), consistently with asynq's active list, lease set
//     and task state.
//   - Fencing: a job record names the worker running its attempt; the
//     progress and outcome of an attempt whose job was given to another
//     worker meanwhile are refused.
//
// A worker cut off from Redis cannot heartbeat, but neither can anyone
// else write: the recovery loop acts only after its own connection has been
// healthy for LostAfter, so that every live worker has had time to
// heartbeat again after a Redis outage.

// Keys of the recovery machinery.
const (
	// heartbeatsKey scores each live worker id by the Unix millisecond at
	// which it counts as lost.
	heartbeatsKey = keyPrefix + "workers:heartbeat"
	// recoveryLeaseKey names the worker process that runs the recovery
	// loop now.
	recoveryLeaseKey = keyPrefix + "recovery:lease"
)

// newWorkerID names a worker process: host, pid and a random suffix (a
// container's pid is often 1).
func newWorkerID() string {
	host, _ := os.Hostname()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b))
}

// ID returns the name of this worker process in job records.
func (w *Worker) ID() string { return w.id }

func (w *Worker) hold(id, queue string) {
	w.mu.Lock()
	w.held[id] = queue
	w.mu.Unlock()
}

func (w *Worker) release(id string) {
	w.mu.Lock()
	delete(w.held, id)
	w.mu.Unlock()
}

// heartbeatState tracks whether this process's Redis connection is healthy.
type heartbeatState struct {
	healthySince time.Time    // zero while heartbeats fail
	published    time.Time    // when the catalogue definitions were last written
	rounds       atomic.Int64 // recovery rounds this process ran as leader
}

// every calls fn every d until ctx is done.
func every(ctx context.Context, d time.Duration, fn func(context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}

// catalogRepublish is how often a worker rewrites its catalogue
// definitions (they are written with HSETNX, so this only restores them
// after Redis lost them); the types it serves are written on every beat.
const catalogRepublish = 10 * time.Second

// heartbeat writes this worker's expiry and the types it serves, and
// extends the leases of the tasks it holds, in one round trip.
func (w *Worker) heartbeat(ctx context.Context) {
	w.mu.Lock()
	definitions := w.now().Sub(w.beats.published) >= catalogRepublish
	byQueue := map[string][]redis.Z{}
	lease := asynqLeaseScore(w.now().Add(asynqLeaseDuration))
	for id, q := range w.held {
		byQueue[q] = append(byQueue[q], redis.Z{Score: lease, Member: id})
	}
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, w.opts.HeartbeatInterval)
	defer cancel()
	pipe := w.rdb.Pipeline()
	pipe.ZAdd(ctx, heartbeatsKey, redis.Z{Score: float64(w.now().Add(w.opts.LostAfter).UnixMilli()), Member: w.id})
	_ = w.catalog.write(ctx, pipe, w.id, w.now(), definitions) // encoded once in NewWorker
	for q, zs := range byQueue {
		pipe.ZAddXX(ctx, asynqLeaseKey(q), zs...)
	}
	_, err := pipe.Exec(ctx)
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err != nil:
		if !w.beats.healthySince.IsZero() {
			w.log.WarnContext(ctx, "worker heartbeat failed", "worker_id", w.id, "error", err)
		}
		w.beats.healthySince = time.Time{}
	case w.beats.healthySince.IsZero():
		w.beats.healthySince = w.now()
	}
	if err == nil && definitions {
		w.beats.published = w.now()
	}
}

// unregister removes the worker from the heartbeat set after a clean
// shutdown.
func (w *Worker) unregister() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	pipe := w.rdb.Pipeline()
	pipe.ZRem(ctx, heartbeatsKey, w.id)
	pipe.HDel(ctx, catalogWorkersKey, w.id)
	if _, err := pipe.Exec(ctx); err != nil {
		w.log.Warn("unregister worker", "worker_id", w.id, "error", err)
	}
}

// recoverLoop runs recovery rounds while this process holds the recovery
// lease.
func (w *Worker) recoverLoop(ctx context.Context) {
	defer w.resignRecovery()
	every(ctx, w.opts.HeartbeatInterval, w.recoverTick)
}

// recoverTick runs one recovery round if this process leads recovery and
// its own connection has been healthy long enough.
func (w *Worker) recoverTick(ctx context.Context) {
	w.mu.Lock()
	healthy := !w.beats.healthySince.IsZero() && w.now().Sub(w.beats.healthySince) >= w.opts.LostAfter
	w.mu.Unlock()
	if !healthy {
		return // let every live worker heartbeat again first
	}
	if leader, err := w.leadRecovery(ctx); err != nil || !leader {
		return
	}
	if w.beats.rounds.Add(1)%60 == 1 {
		if err := pruneCatalogWorkers(ctx, w.rdb, w.now()); err != nil && ctx.Err() == nil {
			w.log.WarnContext(ctx, "prune job type catalogue", "error", err)
		}
	}
	if err := w.recoverRound(ctx); err != nil && ctx.Err() == nil {
		w.log.WarnContext(ctx, "recovery round failed", "error", err)
	}
}

// leadRecovery takes or renews the recovery lease; true while this process
// holds it.
func (w *Worker) leadRecovery(ctx context.Context) (bool, error) {
	ttl := 3 * w.opts.HeartbeatInterval
	n, err := acquireLeaseScript.Run(ctx, w.rdb, []string{recoveryLeaseKey}, w.id, ttl.Milliseconds()).Int()
	return n == 1, err
}

func (w *Worker) resignRecovery() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = releaseLeaseScript.Run(ctx, w.rdb, []string{recoveryLeaseKey}, w.id).Err()
}

// recoverRound finds tasks of every queue whose lease was not extended for
// LostAfter and recovers them.
func (w *Worker) recoverRound(ctx context.Context) error {
	queues, err := w.rdb.SMembers(ctx, asynqAllQueues).Result()
	if err != nil {
		return fmt.Errorf("list queues: %w", err)
	}
	now := w.now()
	// A live holder's lease is at least now + 30 s - HeartbeatInterval.
	staleAt := now.Add(asynqLeaseDuration - w.opts.LostAfter).Unix()
	stale := strconv.FormatInt(staleAt, 10)
	givenUp := strconv.FormatInt(staleAt-2, 10)
	pipe := w.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(queues))
	for i, q := range queues {
		cmds[i] = pipe.ZRangeByScore(ctx, asynqLeaseKey(q), &redis.ZRangeBy{Min: "-inf", Max: stale})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("find stale leases: %w", err)
	}
	type candidate struct{ queue, id string }
	var found []candidate
	for i, c := range cmds {
		for _, id := range c.Val() {
			found = append(found, candidate{queues[i], id})
		}
	}
	// Forget workers that have been gone for an hour (their ids stay that
	// long for the attempt errors that name them).
	defer w.rdb.ZRemRangeByScore(ctx, heartbeatsKey, "-inf", strconv.FormatInt(now.Add(-time.Hour).UnixMilli(), 10))
	if len(found) == 0 {
		return nil
	}
	// The workers that heartbeat now. A heartbeat is written with the
	// leases of the worker's tasks, so a worker listed here whose task's
	// lease is stale gave that task up; one not listed is gone.
	alive, err := w.rdb.ZRangeByScore(ctx, heartbeatsKey, &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(now.UnixMilli(), 10), Max: "+inf",
	}).Result()
	if err != nil {
		return fmt.Errorf("read worker heartbeats: %w", err)
	}
	retention := max(int64(w.opts.Retention/time.Second), 1)
	results := make([]*redis.Cmd, len(found))
	err = pipelined(ctx, w.rdb, func(pipe redis.Pipeliner) {
		for i, c := range found {
			args := []any{c.id, micros(now), stale, now.UnixMilli(), w.opts.MaxLostAttempts, retention,
				micros(now.Add(time.Duration(retention) * time.Second)), now.UTC().Format(time.RFC3339Nano), givenUp}
			for _, id := range alive {
				args = append(args, id)
			}
			results[i] = recoverScript.EvalSha(ctx, pipe, []string{
				jobKey(c.queue, c.id), eventsKey(c.queue, c.id), errorsKey(c.queue, c.id), asynqTaskKey(c.queue, c.id),
				asynqActiveKey(c.queue), asynqLeaseKey(c.queue), asynqPendingKey(c.queue),
			}, args...)
		}
	})
	if err != nil {
		return fmt.Errorf("recover tasks: %w", err)
	}
	wake := map[string]bool{}
	for i, c := range found {
		outcome, err := results[i].Text()
		if err != nil {
			w.log.WarnContext(ctx, "recover task", "job_id", c.id, "queue", c.queue, "error", err)
			continue
		}
		level := slog.LevelInfo
		switch outcome {
		case "fresh":
			continue
		case "lost", "requeued", "abandoned":
			wake[c.queue] = true
		case "failed":
			level = slog.LevelWarn
		}
		w.opts.Metrics.JobRecovered(c.queue, outcome)
		w.log.Log(ctx, level, "recovered task of a lost worker", "job_id", c.id, "queue", c.queue, "outcome", outcome)
	}
	if len(wake) > 0 {
		pipe := w.rdb.Pipeline()
		for q := range wake {
			pipe.Publish(ctx, wakeChannel, q)
		}
		_, _ = pipe.Exec(ctx)
	}
	return nil
}
