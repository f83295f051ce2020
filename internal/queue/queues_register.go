package queue

import (
	"context"
	"fmt"
)

// RegisterQueues makes every named queue known to asynq, as its first
// enqueue would: asynq adds a queue to its set of queues only then, and its
// Inspector (so /monitoring) answers "queue not found" for a configured queue
// no job has used yet. Adding a name that is already there changes nothing,
// so every API instance may call it at start.
func RegisterQueues(ctx context.Context, rdb Client, names []string) error {
	if len(names) == 0 {
		return nil
	}
	members := make([]any, len(names))
	for i, n := range names {
		members[i] = n
	}
	if err := rdb.SAdd(ctx, asynqAllQueues, members...).Err(); err != nil {
		return fmt.Errorf("register queues %v: %w", names, err)
	}
	return nil
}
