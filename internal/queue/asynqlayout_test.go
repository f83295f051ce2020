package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/jobforge/jobforge/internal/redistest"
	"github.com/jobforge/jobforge/internal/store"
)

// TestAsynqLayoutCompat pins jobforge to the Redis layout of the asynq
// version in go.mod: createScript writes asynq's task itself (so a create
// is one atomic step), and what it writes must be exactly what asynq.Client
// writes for the same task: the same keys, the same hash fields, the same
// list and sorted-set entries, and a task message with the same fields.
// Such tasks must then be readable by asynq.Inspector and run by a real
// asynq.Server. An asynq upgrade that changes the layout fails here.
func TestAsynqLayoutCompat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		schedule time.Duration // 0: run now
	}{
		{name: "pending"},
		{name: "scheduled", schedule: time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			ours, theirs := connectDB(t), connectDB(t)
			st := NewStore(ours, slogDiscard())
			frozen := time.Now()
			st.now = func() time.Time { return frozen } // the task's due header is a clock reading

			nj := store.NewJob{
				ID: "01a2b3c4-0000-7000-8000-000000000001", Tenant: "t", Type: "simulate", Queue: "layout",
				Payload: json.RawMessage(`{"outcome":"succeed"}`), MaxAttempts: 3, Timeout: 90*time.Second + 300*time.Millisecond,
				RetryPolicy: store.RetryPolicy{Initial: time.Second, Max: time.Minute, Multiplier: 2, Jitter: 0.1},
			}
			if tt.schedule > 0 {
				nj.ScheduleTime = frozen.Add(tt.schedule)
			}
			w := st.newWrite(ctx, nj, &tenantKeys{})
			require.NoError(t, st.registerQueue(ctx, nj.Queue))
			var cmd *redis.Cmd
			require.NoError(t, st.pipelined(ctx, func(p redis.Pipeliner) { cmd = st.runCreates(ctx, p, []*jobWrite{w}) }))
			replies, err := createReplies(cmd, 1)
			require.NoError(t, err)
			_, _, err = st.created(ctx, w, replies[0])
			require.NoError(t, err)

			// The same task through asynq's own client.
			task := st.task(ctx, w.rec)
			opts := []asynq.Option{asynq.TaskID(task.ID), asynq.Queue(task.Queue), asynq.MaxRetry(task.Retry), asynq.Timeout(task.Timeout)}
			if tt.schedule > 0 {
				opts = append(opts, asynq.ProcessAt(w.rec.ScheduleTime))
			}
			client := asynq.NewClientFromRedisClient(theirs)
			_, err = client.EnqueueContext(ctx, asynq.NewTaskWithHeaders(task.Type, task.Payload, task.Headers.Map()), opts...)
			require.NoError(t, err)

			want, got := dumpAsynq(t, theirs), dumpAsynq(t, ours)
			require.Equal(t, slices.Sorted(mapKeys(want)), slices.Sorted(mapKeys(got)), "asynq keys")
			for key, w := range want {
				require.Equal(t, w, got[key], "key %s", key)
			}

			// asynq reads the task back as its own.
			info, err := asynq.NewInspectorFromRedisClient(ours).GetTaskInfo(task.Queue, task.ID)
			require.NoError(t, err)
			wantState := asynq.TaskStatePending
			if tt.schedule > 0 {
				wantState = asynq.TaskStateScheduled
				require.Equal(t, w.rec.ScheduleTime.Unix(), info.NextProcessAt.Unix())
			}
			require.Equal(t, wantState, info.State)
			require.Equal(t, task.Type, info.Type)
			require.Equal(t, task.Payload, info.Payload)
			require.Equal(t, task.Headers.Map(), info.Headers)
			require.Equal(t, asynqRetryBudget, info.MaxRetry)
			require.Equal(t, 92*time.Second, info.Timeout)
		})
	}
}

// TestAsynqServerRunsCreatedTask runs a task written by createScript
// through a real asynq.Server.
func TestAsynqServerRunsCreatedTask(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb := connectDB(t)
	st := NewStore(rdb, slogDiscard())
	rec, _, err := st.Create(ctx, store.NewJob{
		Tenant: "t", Type: "layout-check", Queue: "layout", Payload: json.RawMessage(`{"n":1}`), MaxAttempts: 1, Timeout: time.Minute,
	})
	require.NoError(t, err)

	type seen struct {
		id, typ, payload, tenant string
		maxRetry                 int
	}
	got := make(chan seen, 1)
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Queues: map[string]int{"layout": 1}, Concurrency: 1, TaskCheckInterval: 10 * time.Millisecond,
		Logger: asynqLogger{log: slogDiscard()}, LogLevel: asynq.FatalLevel,
	})
	require.NoError(t, srv.Start(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		maxRetry, _ := asynq.GetMaxRetry(ctx)
		got <- seen{id, task.Type(), string(task.Payload()), task.Headers()[headerTenant], maxRetry}
		return nil
	})))
	t.Cleanup(srv.Shutdown)
	select {
	case s := <-got:
		require.Equal(t, seen{rec.ID, "layout-check", `{"n":1}`, "t", asynqRetryBudget}, s)
	case <-time.After(10 * time.Second):
		t.Fatal("asynq.Server did not run the task within 10s")
	}
	// asynq completes it as its own: the task is gone from every list.
	redistest.Eventually(t, 5*time.Second, func() bool {
		n, err := rdb.Exists(ctx, asynqTaskKey("layout", rec.ID)).Result()
		return err == nil && n == 0
	}, "asynq removes the completed task")
}

func connectDB(t testing.TB) redis.UniversalClient {
	t.Helper()
	rdb, err := Connect(context.Background(), redistest.NewDB(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// dumpAsynq reads every asynq key of a database into a comparable form:
// hashes field by field (the task message decoded field by field, its map
// entries sorted; pending_since checked and then dropped, as it is a
// clock reading), lists, sets and sorted sets with their scores.
func dumpAsynq(t *testing.T, rdb redis.UniversalClient) map[string]any {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, "asynq:*").Result()
	require.NoError(t, err)
	out := map[string]any{}
	for _, k := range keys {
		typ, err := rdb.Type(ctx, k).Result()
		require.NoError(t, err)
		switch typ {
		case "hash":
			h, err := rdb.HGetAll(ctx, k).Result()
			require.NoError(t, err)
			fields := map[string]string{}
			for f, v := range h {
				switch f {
				case "msg":
					v = decodeTaskMessage(t, []byte(v))
				case "pending_since":
					ns, err := strconv.ParseInt(v, 10, 64)
					require.NoError(t, err, "pending_since is Unix nanoseconds")
					require.WithinDuration(t, time.Now(), time.Unix(0, ns), time.Minute)
					v = "<unix ns>"
				}
				fields[f] = v
			}
			out[k] = fields
		case "list":
			v, err := rdb.LRange(ctx, k, 0, -1).Result()
			require.NoError(t, err)
			out[k] = v
		case "set":
			v, err := rdb.SMembers(ctx, k).Result()
			require.NoError(t, err)
			slices.Sort(v)
			out[k] = v
		case "zset":
			v, err := rdb.ZRangeWithScores(ctx, k, 0, -1).Result()
			require.NoError(t, err)
			out[k] = v
		default:
			t.Fatalf("unexpected asynq key %s of type %s", k, typ)
		}
	}
	return out
}

// decodeTaskMessage renders a protobuf message as "field:type=value" lines,
// nested map entries sorted, so two encodings of the same message compare
// equal whatever order their map entries were written in.
func decodeTaskMessage(t *testing.T, b []byte) string {
	t.Helper()
	var lines []string
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		require.GreaterOrEqual(t, n, 0, "tag")
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			require.GreaterOrEqual(t, n, 0)
			b = b[n:]
			lines = append(lines, fmt.Sprintf("%d:varint=%d", num, v))
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			require.GreaterOrEqual(t, n, 0)
			b = b[n:]
			if num == tmHeaders {
				lines = append(lines, fmt.Sprintf("%d:entry={%s}", num, decodeTaskMessage(t, v)))
			} else {
				lines = append(lines, fmt.Sprintf("%d:bytes=%q", num, v))
			}
		default:
			t.Fatalf("unexpected wire type %v of field %d", typ, num)
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "; ")
}

func slogDiscard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
