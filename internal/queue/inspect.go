package queue

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/jobforge/jobforge/internal/store"
)

// pausedKey is the key asynq sets while a queue is paused (asynq's
// base.PausedKey). asynq only reports queues it has seen a job for, so the
// paused flag of a queue that never had a job is read from here.
func pausedKey(queue string) string { return "asynq:{" + queue + "}:paused" }

// Queues returns the state of the named queues, in the order given. A
// queue that never had a job reports zeros.
func (s *Store) Queues(ctx context.Context, names []string) (_ []store.QueueInfo, err error) {
	defer markUnavailable(&err)
	known, err := s.inspector.Queues()
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	out := make([]store.QueueInfo, 0, len(names))
	for _, name := range names {
		if !slices.Contains(known, name) {
			paused, err := s.queuePaused(ctx, name)
			if err != nil {
				return nil, err
			}
			out = append(out, store.QueueInfo{Name: name, Paused: paused})
			continue
		}
		qi, err := s.inspector.GetQueueInfo(name)
		if err != nil {
			return nil, fmt.Errorf("inspect queue %q: %w", name, err)
		}
		out = append(out, store.QueueInfo{
			Name:           name,
			Pending:        qi.Pending,
			Active:         qi.Active,
			Scheduled:      qi.Scheduled,
			Retry:          qi.Retry,
			Archived:       qi.Archived,
			Latency:        qi.Latency,
			Paused:         qi.Paused,
			MemoryBytes:    qi.MemoryUsage,
			ProcessedToday: qi.Processed,
			FailedToday:    qi.Failed,
		})
	}
	return out, nil
}

func (s *Store) queuePaused(ctx context.Context, name string) (bool, error) {
	n, err := s.rdb.Exists(ctx, pausedKey(name)).Result()
	if err != nil {
		return false, fmt.Errorf("read paused flag of queue %q: %w", name, err)
	}
	return n == 1, nil
}

// PauseQueue stops workers from starting jobs of queue; running jobs finish
// and new jobs are still accepted. Pausing a paused queue is not an error.
func (s *Store) PauseQueue(ctx context.Context, queue string) (err error) {
	defer markUnavailable(&err)
	if err := s.inspector.PauseQueue(queue); err != nil {
		// asynq refuses to pause a paused queue; that is the outcome asked for.
		if paused, perr := s.queuePaused(ctx, queue); perr != nil || !paused {
			return fmt.Errorf("pause queue %q: %w", queue, err)
		}
	}
	return nil
}

// ResumeQueue undoes PauseQueue. Resuming a queue that is not paused is not
// an error.
func (s *Store) ResumeQueue(ctx context.Context, queue string) (err error) {
	defer markUnavailable(&err)
	if err := s.inspector.UnpauseQueue(queue); err != nil {
		if paused, perr := s.queuePaused(ctx, queue); perr != nil || paused {
			return fmt.Errorf("resume queue %q: %w", queue, err)
		}
	}
	return nil
}

// Workers returns the live worker pools, sorted by host, process id and
// start time. A pool is listed until its heartbeat (every 5 s) expires.
func (s *Store) Workers(context.Context) (_ []store.WorkerInfo, err error) {
	defer markUnavailable(&err)
	servers, err := s.inspector.Servers()
	if err != nil {
		return nil, fmt.Errorf("list workers: %w", err)
	}
	out := make([]store.WorkerInfo, 0, len(servers))
	for _, srv := range servers {
		out = append(out, store.WorkerInfo{
			ID:          srv.ID,
			Host:        srv.Host,
			PID:         srv.PID,
			Queues:      srv.Queues,
			Concurrency: srv.Concurrency,
			Busy:        len(srv.ActiveWorkers),
			Started:     srv.Started.UTC(),
			Status:      srv.Status,
		})
	}
	slices.SortFunc(out, func(a, b store.WorkerInfo) int {
		return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.PID, b.PID),
			a.Started.Compare(b.Started), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}
