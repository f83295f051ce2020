package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/queue"
	"github.com/jobforge/jobforge/internal/store"
)

// What /monitoring shows comes from asynq's Inspector: a registered queue
// must be found there, with zero counts until a job uses it, and registering
// again (another API instance, a restart) must leave a used queue as it was.
func TestRegisterQueues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		used        []string // queues that got a job before registration
		register    []string
		wantQueues  []string // asynq's list afterwards
		wantPending map[string]int
	}{
		{"fresh database", nil, []string{"critical", "default", "cpu"}, []string{"cpu", "critical", "default"}, map[string]int{"cpu": 0, "critical": 0, "default": 0}},
		{"a queue already used", []string{"default"}, []string{"critical", "default"}, []string{"critical", "default"}, map[string]int{"critical": 0, "default": 1}},
		{"twice", nil, []string{"default", "default"}, []string{"default"}, map[string]int{"default": 0}},
		{"none", nil, nil, []string{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := setup(t)
			for _, q := range tt.used {
				_, _, err := b.store.Create(ctx, store.NewJob{Tenant: "t", Type: "simulate", Queue: q, Payload: []byte(`{}`), MaxAttempts: 1, Timeout: time.Minute})
				require.NoError(t, err)
			}
			require.NoError(t, queue.RegisterQueues(ctx, b.rdb, tt.register))
			require.NoError(t, queue.RegisterQueues(ctx, b.rdb, tt.register), "registering again is no error")

			insp := asynq.NewInspectorFromRedisClient(b.rdb)
			queues, err := insp.Queues()
			require.NoError(t, err)
			require.ElementsMatch(t, tt.wantQueues, queues)
			for q, pending := range tt.wantPending {
				info, err := insp.GetQueueInfo(q)
				require.NoError(t, err, "queue %s is found", q)
				require.Equal(t, pending, info.Pending, q)
			}
		})
	}
}
