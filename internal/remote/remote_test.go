package remote_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/auth"
	"github.com/jobforge/jobforge/internal/queue"
	"github.com/jobforge/jobforge/internal/redistest"
	"github.com/jobforge/jobforge/internal/remote"
	"github.com/jobforge/jobforge/internal/store"
)

func TestMain(m *testing.M) { redistest.Main(m) }

const (
	workerKey = "jfk_py.remote-test-worker-secret-0123456789"
	apiKey    = "jfk_app.remote-test-api-secret-0123456789"
	tenant    = "acme"
)

// bench is a worker-protocol server on loopback against a real Redis, and
// the store jobs are created and read through.
type bench struct {
	store *queue.Store
	addr  string
}

func setup(t *testing.T) *bench {
	t.Helper()
	rdb, err := queue.Connect(context.Background(), redistest.NewDB(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	log := slog.New(slog.DiscardHandler)
	authn, err := auth.New([]auth.Key{
		auth.HashedKey(workerKey, "py", tenant, []string{auth.ScopeWorker}),
		auth.HashedKey(apiKey, "app", tenant, auth.AllScopes),
	}, nil)
	require.NoError(t, err)
	srv := remote.NewServer(remote.Options{
		Redis: rdb, HeartbeatInterval: 200 * time.Millisecond, Logger: log,
		Worker: queue.WorkerOptions{PollInterval: 5 * time.Millisecond, DelayedCheckInterval: 100 * time.Millisecond,
			Retention: time.Hour, Logger: log, CancelCheckInterval: 100 * time.Millisecond},
	})
	gs := grpc.NewServer(grpc.ChainStreamInterceptor(remote.AuthInterceptor(authn)))
	jobforgev1.RegisterWorkerServiceServer(gs, srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(func() { srv.Shutdown(); gs.Stop() })
	return &bench{store: queue.NewStore(rdb, log), addr: lis.Addr().String()}
}

// fake is a scripted remote worker: one stream, driven step by step.
type fake struct {
	t      *testing.T
	stream grpc.BidiStreamingClient[jobforgev1.WorkRequest, jobforgev1.WorkResponse]
	in     chan *jobforgev1.WorkResponse
	errs   chan error
	cancel context.CancelFunc
}

func (b *bench) dial(t *testing.T, key string) *fake {
	t.Helper()
	conn, err := grpc.NewClient(b.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if key != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
	}
	stream, err := jobforgev1.NewWorkerServiceClient(conn).Work(ctx)
	require.NoError(t, err)
	f := &fake{t: t, stream: stream, in: make(chan *jobforgev1.WorkResponse, 64), errs: make(chan error, 1), cancel: cancel}
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				f.errs <- err
				return
			}
			f.in <- m
		}
	}()
	return f
}

func (f *fake) send(m *jobforgev1.WorkRequest) {
	f.t.Helper()
	require.NoError(f.t, f.stream.Send(m))
}

// next returns the next message, failing after a deadline.
func (f *fake) next() *jobforgev1.WorkResponse {
	f.t.Helper()
	select {
	case m := <-f.in:
		return m
	case err := <-f.errs:
		f.t.Fatalf("stream ended: %v", err)
	case <-time.After(10 * time.Second):
		f.t.Fatal("no message from the server within 10s")
	}
	return nil
}

// ended returns the error the stream ended with.
func (f *fake) ended() error {
	f.t.Helper()
	for {
		select {
		case <-f.in:
		case err := <-f.errs:
			return err
		case <-time.After(10 * time.Second):
			f.t.Fatal("the stream did not end within 10s")
			return nil
		}
	}
}

// heartbeat keeps the stream alive until the test ends or stop is called.
func (f *fake) heartbeat() (stop func()) {
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if f.stream.Send(&jobforgev1.WorkRequest{Message: &jobforgev1.WorkRequest_Heartbeat_{Heartbeat: &jobforgev1.WorkRequest_Heartbeat{}}}) != nil {
					return
				}
			}
		}
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			close(done)
		}
	}
	f.t.Cleanup(stop)
	return stop
}

var echoSchema = map[string]any{
	"type": "object", "additionalProperties": false, "required": []any{"word"},
	"properties": map[string]any{"word": map[string]any{"type": "string", "maxLength": 20}},
}

func hello(maxJobs int32, schema map[string]any) *jobforgev1.WorkRequest {
	var s *structpb.Struct
	if schema != nil {
		s, _ = structpb.NewStruct(schema)
	}
	return &jobforgev1.WorkRequest{Message: &jobforgev1.WorkRequest_Hello_{Hello: &jobforgev1.WorkRequest_Hello{
		Name: "fake", MaxJobs: maxJobs, Queues: map[string]int32{"remote": 1},
		JobTypes: []*jobforgev1.JobTypeDefinition{{Name: "echo", Queue: "remote", MaxAttempts: 2, PayloadSchema: s}},
	}}}
}

// connect dials with the worker key, says hello and returns after Welcome.
func (b *bench) connect(t *testing.T, maxJobs int32) *fake {
	t.Helper()
	f := b.dial(t, workerKey)
	f.send(hello(maxJobs, echoSchema))
	require.NotEmpty(t, f.next().GetWelcome().GetWorkerId())
	f.heartbeat()
	return f
}

func (b *bench) create(t *testing.T, word string) string {
	t.Helper()
	payload, err := json.Marshal(map[string]string{"word": word})
	require.NoError(t, err)
	rec, _, err := b.store.Create(context.Background(), store.NewJob{
		Tenant: tenant, Type: "echo", Queue: "remote", Payload: payload, MaxAttempts: 2, Timeout: time.Minute,
	})
	require.NoError(t, err)
	return rec.ID
}

func (b *bench) waitState(t *testing.T, id string, want store.State) *store.Record {
	t.Helper()
	var rec *store.Record
	redistest.Eventually(t, 10*time.Second, func() bool {
		var err error
		rec, err = b.store.Get(context.Background(), tenant, id)
		require.NoError(t, err)
		return rec.State == want
	}, "job %s reaches %s", id, want)
	return rec
}

func outcome(id string, attempt int32, result any) *jobforgev1.WorkRequest {
	v, _ := structpb.NewValue(result)
	return &jobforgev1.WorkRequest{Message: &jobforgev1.WorkRequest_Outcome_{Outcome: &jobforgev1.WorkRequest_Outcome{
		JobId: id, Attempt: attempt, Outcome: &jobforgev1.WorkRequest_Outcome_Result{Result: v},
	}}}
}

func progress(id string, attempt, percent int32) *jobforgev1.WorkRequest {
	return &jobforgev1.WorkRequest{Message: &jobforgev1.WorkRequest_Progress{Progress: &jobforgev1.WorkRequest_JobProgress{
		JobId: id, Attempt: attempt, Percent: percent, Message: "working",
	}}}
}

func TestRefusedConnections(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tests := []struct {
		name    string
		key     string
		hello   *jobforgev1.WorkRequest
		code    codes.Code
		field   string // first field violation
		message string
	}{
		{"unauthenticated", "", hello(1, echoSchema), codes.Unauthenticated, "", ""},
		{"no worker scope", apiKey, hello(1, echoSchema), codes.PermissionDenied, "", `"worker" scope`},
		{"asks for 0 jobs", workerKey, hello(0, echoSchema), codes.InvalidArgument, "hello.max_jobs", "between 1 and 10000, got 0"},
		{"no schema", workerKey, hello(1, nil), codes.InvalidArgument, "hello.job_types[0].payload_schema", "required"},
		{"malformed schema", workerKey, hello(1, map[string]any{"type": "no-such-type"}), codes.InvalidArgument,
			"hello.job_types[0].payload_schema", "does not compile"},
		{"first message not hello", workerKey, &jobforgev1.WorkRequest{Message: &jobforgev1.WorkRequest_Heartbeat_{Heartbeat: &jobforgev1.WorkRequest_Heartbeat{}}},
			codes.InvalidArgument, "hello", "first message must be a hello"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := b.dial(t, tt.key)
			_ = f.stream.Send(tt.hello)
			err := f.ended()
			require.Equal(t, tt.code, status.Code(err), "%v", err)
			require.Contains(t, status.Convert(err).Message(), tt.message)
			if tt.field != "" {
				var br *errdetails.BadRequest
				for _, d := range status.Convert(err).Details() {
					if v, ok := d.(*errdetails.BadRequest); ok {
						br = v
					}
				}
				require.NotNil(t, br, "field violations")
				require.Equal(t, tt.field, br.GetFieldViolations()[0].GetField())
			}
		})
	}
}

// A job runs on the remote worker: assignment, progress, outcome; a second
// outcome for the same attempt is refused.
func TestAssignmentProgressOutcome(t *testing.T) {
	t.Parallel()
	b := setup(t)
	f := b.connect(t, 4)
	id := b.create(t, "hello")
	a := f.next().GetAssignment()
	require.Equal(t, id, a.GetJobId())
	require.Equal(t, "echo", a.GetJobType())
	require.Equal(t, int32(1), a.GetAttempt())
	require.Equal(t, "hello", a.GetPayload().GetFields()["word"].GetStringValue())
	require.NotNil(t, a.GetDeadline())

	f.send(progress(id, 1, 40))
	redistest.Eventually(t, 10*time.Second, func() bool {
		rec, err := b.store.Get(context.Background(), tenant, id)
		require.NoError(t, err)
		return rec.Progress.Percent == 40
	}, "progress is recorded")
	f.send(outcome(id, 1, map[string]any{"echo": "hello"}))
	require.True(t, f.next().GetOutcomeAck().GetAccepted())
	rec := b.waitState(t, id, store.StateSucceeded)
	require.JSONEq(t, `{"echo":"hello"}`, string(rec.Result))
	require.Equal(t, 1, rec.Attempts)

	f.send(outcome(id, 1, "again"))
	ack := f.next().GetOutcomeAck()
	require.False(t, ack.GetAccepted(), "a duplicate outcome is refused")
	require.Contains(t, ack.GetReason(), "not assigned to this worker")
}

// A worker never holds more jobs than it asked for.
func TestBackpressure(t *testing.T) {
	t.Parallel()
	b := setup(t)
	f := b.connect(t, 1)
	ids := []string{b.create(t, "a"), b.create(t, "b"), b.create(t, "c")}
	for range ids {
		a := f.next().GetAssignment()
		require.NotNil(t, a)
		select {
		case m := <-f.in:
			t.Fatalf("a second assignment while one is outstanding: %v", m)
		case <-time.After(300 * time.Millisecond): // a window for a wrong one to arrive; none may
		}
		f.send(outcome(a.GetJobId(), a.GetAttempt(), "ok"))
		require.True(t, f.next().GetOutcomeAck().GetAccepted())
	}
	for _, id := range ids {
		b.waitState(t, id, store.StateSucceeded)
	}
}

// CancelJob reaches the worker as a Cancel; progress after it is dropped
// and the late outcome refused.
func TestCancelRunningJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	f := b.connect(t, 2)
	id := b.create(t, "slow")
	a := f.next().GetAssignment()
	require.Equal(t, id, a.GetJobId())
	_, err := b.store.Cancel(context.Background(), tenant, id, "not needed", "test")
	require.NoError(t, err)
	c := f.next().GetCancel()
	require.Equal(t, id, c.GetJobId())
	require.Equal(t, "cancelled", c.GetReason())

	f.send(progress(id, 1, 90))
	f.send(outcome(id, 1, "too late"))
	require.False(t, f.next().GetOutcomeAck().GetAccepted(), "the outcome of a cancelled attempt is refused")
	rec := b.waitState(t, id, store.StateCancelled)
	require.NotEqual(t, 90, rec.Progress.Percent, "progress after cancel is dropped")
}

// A worker that goes silent (or whose stream drops) gives its jobs back at
// once without using up an attempt; another worker completes them, and a
// late outcome from the first is refused.
func TestLostWorkerGivesJobsBack(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"silent", "disconnected"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			first := b.dial(t, workerKey)
			first.send(hello(1, echoSchema))
			require.NotNil(t, first.next().GetWelcome())
			stop := first.heartbeat()
			id := b.create(t, "orphan")
			a := first.next().GetAssignment()
			require.Equal(t, id, a.GetJobId())
			lost := time.Now()
			switch how {
			case "silent":
				stop() // stream open, no heartbeats: gone after 3 intervals
				require.Error(t, first.ended(), "the server ends a silent worker's stream")
			case "disconnected":
				stop()
				first.cancel()
			}
			rec := b.waitState(t, id, store.StatePending)
			require.Equal(t, 0, rec.Attempts, "the lost attempt is given back")

			second := b.connect(t, 1)
			a2 := second.next().GetAssignment()
			require.Equal(t, id, a2.GetJobId())
			require.Equal(t, int32(1), a2.GetAttempt(), "the crash did not use up an attempt")
			require.Less(t, time.Since(lost), 10*time.Second, "back in the queue within the recovery bound")
			second.send(outcome(id, 1, "done"))
			require.True(t, second.next().GetOutcomeAck().GetAccepted())
			b.waitState(t, id, store.StateSucceeded)

			late := b.connect(t, 1)
			late.send(outcome(id, 1, "late"))
			require.False(t, late.next().GetOutcomeAck().GetAccepted(), "a late outcome from a worker that lost the job is refused")
		})
	}
}
