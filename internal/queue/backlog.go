package queue

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// QueueLoad is what one queue asks of the workers right now, read in one
// atomic step: Pending jobs wait in its list, Running jobs are held by a
// worker (asynq's active list), Paused says whether workers may take its
// pending jobs at all.
type QueueLoad struct {
	Queue   string
	Pending int64
	Running int64
	Paused  bool
}

// Runnable is the work the queue gives a worker fleet: its running jobs
// plus, unless it is paused, its pending ones. Scaling on it never leaves
// running jobs without a pod, and a paused queue's backlog never adds one.
func (l QueueLoad) Runnable() int64 {
	if l.Paused {
		return l.Running
	}
	return l.Pending + l.Running
}

// queueLoadScript reads one queue's pending and active list lengths and its
// paused flag at one instant: a job moving from pending to active is never
// counted twice or missed. KEYS pending, active, paused (one hash slot).
var queueLoadScript = redis.NewScript(`
return {redis.call('LLEN', KEYS[1]), redis.call('LLEN', KEYS[2]), redis.call('EXISTS', KEYS[3])}`)

// Backlog reads the load of each queue in one round trip: one script call
// per queue, pipelined, each within its queue's hash slot (so it also works
// where the queues live on different Cluster nodes).
func Backlog(ctx context.Context, rdb Client, queues []string) ([]QueueLoad, error) {
	if len(queues) == 0 {
		return nil, nil
	}
	// EVAL, not EVALSHA: the script is tiny, and a pipeline cannot fall
	// back from NOSCRIPT (after a failover the new master has no scripts).
	pipe := rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(queues))
	for i, q := range queues {
		cmds[i] = queueLoadScript.Eval(ctx, pipe, []string{asynqPendingKey(q), asynqActiveKey(q), pausedKey(q)})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("queue backlog: %w", err)
	}
	out := make([]QueueLoad, len(queues))
	for i, q := range queues {
		v, err := cmds[i].Int64Slice()
		if err != nil || len(v) != 3 {
			return nil, fmt.Errorf("queue backlog %s: unexpected reply %v: %w", q, cmds[i].Val(), err)
		}
		out[i] = QueueLoad{Queue: q, Pending: v[0], Running: v[1], Paused: v[2] == 1}
	}
	return out, nil
}
