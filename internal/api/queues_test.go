package api_test

import (
	"context"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/api"
	"github.com/jobforge/jobforge/internal/queue"
	"github.com/jobforge/jobforge/internal/redistest"
)

// opsBundle is an API server with the QueueService and ScheduleService,
// reachable over REST (embedded bundle) and gRPC.
type opsBundle struct {
	*bundle
	queues    jobforgev1.QueueServiceClient
	schedules jobforgev1.ScheduleServiceClient
	store     *queue.Store
}

// setupOps runs the API with every service on a fresh database. With
// worker, a worker (io pool: critical, default; cpu pool: cpu) and a
// scheduler run in-process too.
func setupOps(t *testing.T, worker bool) *opsBundle {
	t.Helper()
	st := newStack(t, redistest.NewDB(t))
	srv := st.serve(t, api.Options{
		QueueService:    api.NewQueueService(st.store, testQueues, st.log),
		ScheduleService: api.NewScheduleService(st.store, st.svc, st.log),
	})
	conn := dial(t, srv.GRPCAddr())
	store := st.store
	if worker {
		st.startWorker(t, nil)
		sctx, stop := context.WithCancel(context.Background())
		schedDone := make(chan error, 1)
		go func() { schedDone <- queue.NewScheduler(store, queue.SchedulerOptions{Logger: st.log}).Run(sctx) }()
		// Registered after the server's cleanup, so it runs first.
		t.Cleanup(func() { stop(); require.NoError(t, <-schedDone) })
	}
	return &opsBundle{
		bundle:    &bundle{client: jobforgev1.NewJobServiceClient(conn), baseURL: "http://" + srv.HTTPAddr()},
		queues:    jobforgev1.NewQueueServiceClient(conn),
		schedules: jobforgev1.NewScheduleServiceClient(conn),
		store:     store,
	}
}

// restQueue returns queue name from GET /v1/queues.
func (b *opsBundle) restQueue(t *testing.T, name string) map[string]any {
	t.Helper()
	code, body, _ := b.do(t, "GET", "/v1/queues", "")
	require.Equal(t, http.StatusOK, code, "%v", body)
	for _, q := range body["queues"].([]any) {
		if q := q.(map[string]any); q["name"] == "queues/"+name {
			return q
		}
	}
	t.Fatalf("queue %s not listed: %v", name, body)
	return nil
}

func TestListQueues(t *testing.T) {
	t.Parallel()
	b := setupOps(t, false)
	ctx := context.Background()

	// Every configured queue is listed, even before asynq has seen a job.
	code, body, _ := b.do(t, "GET", "/v1/queues", "")
	require.Equal(t, http.StatusOK, code, "%v", body)
	require.Equal(t, []any{
		map[string]any{"name": "queues/cpu", "latency": "0s"},
		map[string]any{"name": "queues/critical", "latency": "0s"},
		map[string]any{"name": "queues/default", "latency": "0s"},
	}, body["queues"])

	b.create(t, `{"type":"simulate","queue":"default"}`)
	b.create(t, `{"type":"simulate","queue":"default","scheduleDelay":"3600s"}`)
	q := b.restQueue(t, "default")
	require.Equal(t, "1", q["pending"], "int64 is a JSON string")
	require.Equal(t, "1", q["scheduled"])
	require.NotEmpty(t, q["memoryBytes"])

	resp, err := b.queues.ListQueues(ctx, &jobforgev1.ListQueuesRequest{})
	require.NoError(t, err)
	var names []string
	for _, q := range resp.GetQueues() {
		names = append(names, q.GetName())
		if q.GetName() == "queues/default" {
			require.Equal(t, int64(1), q.GetPending())
			require.Equal(t, int64(1), q.GetScheduled())
			require.False(t, q.GetPaused())
			require.NotNil(t, q.GetLatency())
		}
	}
	require.Equal(t, []string{"queues/cpu", "queues/critical", "queues/default"}, names)
}

func TestPauseAndResumeQueue(t *testing.T) {
	t.Parallel()
	b := setupOps(t, false)
	ctx := context.Background()
	rest := func(verb string) func(t *testing.T, name string) (codes.Code, bool, *errdetails.ErrorInfo) {
		return func(t *testing.T, name string) (codes.Code, bool, *errdetails.ErrorInfo) {
			code, body, _ := b.do(t, "POST", "/v1/"+name+":"+verb, "")
			if code != http.StatusOK {
				var info *errdetails.ErrorInfo
				for _, d := range body["details"].([]any) {
					if d := d.(map[string]any); d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo" {
						info = &errdetails.ErrorInfo{Reason: d["reason"].(string)}
					}
				}
				return codes.Code(body["code"].(float64)), false, info
			}
			require.Equal(t, name, body["name"])
			return codes.OK, body["paused"] == true, nil
		}
	}
	grpcCall := func(pause bool) func(t *testing.T, name string) (codes.Code, bool, *errdetails.ErrorInfo) {
		return func(t *testing.T, name string) (codes.Code, bool, *errdetails.ErrorInfo) {
			var q *jobforgev1.Queue
			var err error
			if pause {
				q, err = b.queues.PauseQueue(ctx, &jobforgev1.PauseQueueRequest{Name: name})
			} else {
				q, err = b.queues.ResumeQueue(ctx, &jobforgev1.ResumeQueueRequest{Name: name})
			}
			if err != nil {
				st := status.Convert(err)
				var info *errdetails.ErrorInfo
				for _, d := range st.Details() {
					if d, ok := d.(*errdetails.ErrorInfo); ok {
						info = d
					}
				}
				return st.Code(), false, info
			}
			require.Equal(t, name, q.GetName())
			return codes.OK, q.GetPaused(), nil
		}
	}
	for _, tr := range []struct {
		name          string
		pause, resume func(t *testing.T, name string) (codes.Code, bool, *errdetails.ErrorInfo)
		queue         string
	}{
		{"rest", rest("pause"), rest("resume"), "critical"},
		{"grpc", grpcCall(true), grpcCall(false), "cpu"},
	} {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			name := "queues/" + tr.queue
			steps := []struct {
				step       string
				call       func(t *testing.T, name string) (codes.Code, bool, *errdetails.ErrorInfo)
				name       string
				wantCode   codes.Code
				wantPaused bool
				wantReason string
			}{
				{"pause", tr.pause, name, codes.OK, true, ""},
				{"pause again is no error", tr.pause, name, codes.OK, true, ""},
				{"resume", tr.resume, name, codes.OK, false, ""},
				{"resume again is no error", tr.resume, name, codes.OK, false, ""},
				{"pause unknown queue", tr.pause, "queues/nowhere", codes.NotFound, false, "QUEUE_NOT_FOUND"},
				{"resume unknown queue", tr.resume, "queues/nowhere", codes.NotFound, false, "QUEUE_NOT_FOUND"},
				{"malformed name", tr.pause, "queues/Not_A_Queue", codes.InvalidArgument, false, "INVALID_ARGUMENT"},
			}
			for _, s := range steps { // in order: each step builds on the last
				code, paused, info := s.call(t, s.name)
				require.Equal(t, s.wantCode, code, s.step)
				require.Equal(t, s.wantPaused, paused, s.step)
				if s.wantReason != "" {
					require.NotNil(t, info, s.step)
					require.Equal(t, s.wantReason, info.GetReason(), s.step)
				}
				if code == codes.OK {
					require.Equal(t, s.wantPaused, b.restQueue(t, tr.queue)["paused"] == true, "%s: listed state", s.step)
				}
			}
		})
	}
	code, _, _ := b.do(t, "POST", "/v1/queues/nowhere:pause", "")
	require.Equal(t, http.StatusNotFound, code)
}

// While a queue is paused its jobs wait; other queues keep running; on
// resume the waiting job runs. The worker list shows the live pools.
func TestPausedQueueAndWorkersWhileWorkerRuns(t *testing.T) {
	t.Parallel()
	b := setupOps(t, true)
	ctx := context.Background()

	_, err := b.queues.PauseQueue(ctx, &jobforgev1.PauseQueueRequest{Name: "queues/critical"})
	require.NoError(t, err)
	held := b.create(t, `{"type":"simulate","queue":"critical"}`)
	other := b.create(t, `{"type":"simulate","queue":"default"}`)
	b.wait(t, other["name"].(string), inState("SUCCEEDED"), "job on a running queue runs")
	code, got, _ := b.do(t, "GET", "/v1/"+held["name"].(string), "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "PENDING", got["state"], "job on the paused queue waits")
	require.Equal(t, "1", b.restQueue(t, "critical")["pending"])

	code, body, _ := b.do(t, "POST", "/v1/queues/critical:resume", "{}")
	require.Equal(t, http.StatusOK, code, "%v", body)
	b.wait(t, held["name"].(string), inState("SUCCEEDED"), "job runs once its queue is resumed")

	// A long job keeps one slot of the cpu pool busy; asynq reports busy
	// slots with its heartbeat (every 5s).
	long := b.create(t, `{"type":"report","payload":{"pages":100,"page_millis":200},"queue":"cpu"}`)
	b.wait(t, long["name"].(string), inState("RUNNING"), "long job starts")
	host, err := os.Hostname()
	require.NoError(t, err)
	redistest.Eventually(t, 15*time.Second, func() bool {
		resp, err := b.queues.ListWorkers(ctx, &jobforgev1.ListWorkersRequest{})
		require.NoError(t, err)
		// A pool is listed from its first heartbeat, which asynq writes
		// on a goroutine of its own after the worker starts.
		require.LessOrEqual(t, len(resp.GetWorkers()), 2, "one entry per pool")
		if len(resp.GetWorkers()) < 2 {
			return false
		}
		for _, w := range resp.GetWorkers() {
			require.Equal(t, host, w.GetHost())
			require.Equal(t, int32(os.Getpid()), w.GetPid())
			require.Equal(t, "active", w.GetStatus())
			require.NotEmpty(t, w.GetId())
			require.NotNil(t, w.GetStartTime())
		}
		cpu := resp.GetWorkers()[0]
		if _, ok := cpu.GetQueues()["cpu"]; !ok {
			cpu = resp.GetWorkers()[1]
		}
		require.Equal(t, map[string]int32{"cpu": 1}, cpu.GetQueues())
		require.Equal(t, int32(1), cpu.GetConcurrency())
		return cpu.GetBusy() == 1
	}, "the cpu pool reports its busy slot")

	code, body, _ = b.do(t, "GET", "/v1/workers", "")
	require.Equal(t, http.StatusOK, code, "%v", body)
	workers := body["workers"].([]any)
	require.Len(t, workers, 2)
	for _, w := range workers {
		w := w.(map[string]any)
		require.Equal(t, host, w["host"])
		require.Equal(t, float64(os.Getpid()), w["pid"])
		require.NotEmpty(t, w["queues"])
		require.NotEmpty(t, w["concurrency"])
		require.NotEmpty(t, w["startTime"])
	}
	_, err = b.client.CancelJob(ctx, &jobforgev1.CancelJobRequest{Name: long["name"].(string)})
	require.NoError(t, err)
}
