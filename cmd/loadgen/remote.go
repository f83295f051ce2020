package main

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
)

// B9 drains the same no-op jobs as B5 with one process, taken by workers
// on the worker protocol instead: one worker process serves WorkerService
// and a single remote worker process (a Go client, then a Python one)
// holds as many jobs at once as the Go worker's io pool has slots. The
// remote workers declare their own no-op type on their own queue, so that
// the serving process's in-process pools (idle) never take these jobs.
const (
	remoteType  = "noop"
	remoteQueue = "remote"
)

//go:embed noop_worker.py
var noopWorkerPy []byte

// remoteNoopJob is noopJob for the remote workers' type: the same empty
// payload.
func remoteNoopJob() *jobforgev1.Job {
	return &jobforgev1.Job{Type: remoteType, Payload: &structpb.Struct{}}
}

// runRemoteWorker is `loadgen remote-worker`: a worker speaking the worker
// protocol that declares the no-op type and answers every assignment at
// once, on the receiving goroutine, with the result a no-op simulate job
// stores. JF_KEY is its API key (worker scope).
func runRemoteWorker(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("loadgen remote-worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "host:port of a worker serving the protocol (-worker-protocol-addr)")
	maxJobs := fs.Int("max-jobs", rawConcurrency, "jobs assigned at once (Hello.max_jobs)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+getenv("JF_KEY"))
	stream, err := jobforgev1.NewWorkerServiceClient(conn).Work(ctx)
	if err != nil {
		return err
	}
	var mu sync.Mutex // a stream's Send is not safe for concurrent use
	send := func(m *jobforgev1.WorkRequest) error {
		mu.Lock()
		defer mu.Unlock()
		return stream.Send(m)
	}
	schema, _ := structpb.NewStruct(map[string]any{"type": "object"})
	if err := send(&jobforgev1.WorkRequest{Message: &jobforgev1.WorkRequest_Hello_{Hello: &jobforgev1.WorkRequest_Hello{
		Name: "gonoop", MaxJobs: int32(*maxJobs),
		JobTypes: []*jobforgev1.JobTypeDefinition{{Name: remoteType, Queue: remoteQueue, PayloadSchema: schema}},
	}}}); err != nil {
		return err
	}
	answered, refused := 0, 0
	defer func() {
		fmt.Fprintf(stderr, "stopped after answering %d assignments (%d outcomes refused)\n", answered, refused)
	}()
	for {
		m, err := stream.Recv()
		if err != nil {
			if ctx.Err() != nil || status.Code(err) == codes.Canceled {
				return nil
			}
			return err
		}
		switch m := m.GetMessage().(type) {
		case *jobforgev1.WorkResponse_Welcome_:
			fmt.Fprintln(stderr, "connected as", m.Welcome.GetWorkerId())
			go heartbeat(ctx, m.Welcome.GetHeartbeatInterval().AsDuration(), send)
		case *jobforgev1.WorkResponse_Assignment_:
			a := m.Assignment
			result := structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
				"attempt": structpb.NewNumberValue(float64(a.GetAttempt())),
			}})
			if err := send(&jobforgev1.WorkRequest{Message: &jobforgev1.WorkRequest_Outcome_{Outcome: &jobforgev1.WorkRequest_Outcome{
				JobId: a.GetJobId(), Attempt: a.GetAttempt(), Outcome: &jobforgev1.WorkRequest_Outcome_Result{Result: result},
			}}}); err != nil {
				return err
			}
			answered++
		case *jobforgev1.WorkResponse_OutcomeAck_:
			if !m.OutcomeAck.GetAccepted() {
				refused++
				fmt.Fprintln(stderr, "outcome refused:", m.OutcomeAck.GetReason())
			}
		}
	}
}

func heartbeat(ctx context.Context, interval time.Duration, send func(*jobforgev1.WorkRequest) error) {
	t := time.NewTicker(max(interval/2, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if send(&jobforgev1.WorkRequest{Message: &jobforgev1.WorkRequest_Heartbeat_{Heartbeat: &jobforgev1.WorkRequest_Heartbeat{}}}) != nil {
				return
			}
		}
	}
}

// remoteDrainRun fills the paused remote queue with n no-op jobs and
// measures how fast one remote worker drains it through one worker process
// serving the protocol. client returns the remote worker's command line
// for the protocol's address.
func (s *suite) remoteDrainRun(ctx context.Context, name string, n int, client func(addr string) (bin string, args []string)) (drainRun, error) {
	if err := s.flush(ctx); err != nil {
		return drainRun{}, err
	}
	if err := s.inspector().PauseQueue(remoteQueue); err != nil {
		return drainRun{}, err
	}
	var ps []*proc
	defer func() { stopAll(ps) }()
	protocol, err := freeAddr()
	if err != nil {
		return drainRun{}, err
	}
	admin, err := freeAddr()
	if err != nil {
		return drainRun{}, err
	}
	args := append([]string{"-redis-url", s.redisURL(), "-admin-addr", admin,
		"-worker-protocol-addr", protocol, "-api-keys-file", s.keysFile()}, s.workerFlags...)
	gw, err := startProc(s.logDir, name+"-worker", filepath.Join(s.binDir, "worker"), args...)
	if err != nil {
		return drainRun{}, err
	}
	gw.admin = admin
	ps = append(ps, gw)
	if err := gw.waitReady(ctx, httpReady("http://"+admin+"/readyz")); err != nil {
		return drainRun{}, err
	}
	bin, cargs := client(protocol)
	c, err := startProcEnv(s.logDir, name, []string{"JF_KEY=" + s.token}, bin, cargs...)
	if err != nil {
		return drainRun{}, err
	}
	ps = append(ps, c)
	// Its type is in the catalogue once its connection's worker has started.
	if err := c.waitReady(ctx, s.typeListed(remoteType)); err != nil {
		return drainRun{}, err
	}
	if err := s.fillJobs(ctx, n, remoteNoopJob); err != nil {
		return drainRun{}, err
	}
	return s.measureDrain(ctx, remoteQueue, n, ps, "remote")
}

// typeListed checks that the API lists job type name.
func (s *suite) typeListed(name string) func(context.Context) error {
	return func(ctx context.Context) error {
		resp, err := s.client.ListJobTypes(ctx, &jobforgev1.ListJobTypesRequest{})
		if err != nil {
			return err
		}
		for _, t := range resp.GetJobTypes() {
			if t.GetName() == name {
				return nil
			}
		}
		return fmt.Errorf("job type %q is not in the catalogue", name)
	}
}

// pythonWorker finds a Python 3 with grpcio and grpc_tools, generates the
// worker protocol's stubs from -proto-dir into the log directory and writes
// noop_worker.py next to them. It returns the interpreter and the script,
// or why the Python run is skipped.
func (s *suite) pythonWorker(ctx context.Context) (py, script, skip string) {
	candidates := []string{"/usr/bin/python3", "python3"}
	if s.python != "" {
		candidates = []string{s.python}
	}
	for _, c := range candidates {
		if exec.CommandContext(ctx, c, "-c", "import grpc, grpc_tools").Run() == nil {
			py = c
			break
		}
	}
	if py == "" {
		return "", "", "no python3 with grpcio"
	}
	const proto = "jobforge/v1/worker_service.proto"
	if _, err := os.Stat(filepath.Join(s.protoDir, proto)); err != nil {
		return "", "", fmt.Sprintf("no %s under -proto-dir %s", proto, s.protoDir)
	}
	dir := filepath.Join(s.logDir, "python")
	if err := os.RemoveAll(dir); err != nil {
		return "", "", err.Error()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err.Error()
	}
	out, err := exec.CommandContext(ctx, py, "-m", "grpc_tools.protoc", "-I", s.protoDir,
		"--python_out="+dir, "--grpc_python_out="+dir, proto).CombinedOutput()
	if err != nil {
		return "", "", fmt.Sprintf("generating the Python stubs failed: %v: %s", err, strings.TrimSpace(string(out)))
	}
	script = filepath.Join(dir, "noop_worker.py")
	if err := os.WriteFile(script, noopWorkerPy, 0o644); err != nil {
		return "", "", err.Error()
	}
	return py, script, ""
}

// benchRemoteWorker is B9. The in-process Go worker and raw asynq are
// measured again in the same window, so that the ratios compare runs taken
// seconds apart.
func (s *suite) benchRemoteWorker(ctx context.Context) error {
	if err := s.ensureAPI(ctx); err != nil {
		return err
	}
	n := s.workerJobs
	raw, err := s.drainRun(ctx, 1, true, n)
	if err != nil {
		return fmt.Errorf("raw asynq server: %w", err)
	}
	goW, err := s.drainRun(ctx, 1, false, n)
	if err != nil {
		return fmt.Errorf("in-process Go worker: %w", err)
	}
	slots := strconv.Itoa(rawConcurrency)
	s.res.add(row{
		Bench: "B9", What: fmt.Sprintf("no-op jobs drained by the in-process Go worker (1 process, %s slots; as B5 ×1, same window)", slots),
		Value: goW.rate, Unit: "jobs/s", Display: rate(goW.rate), Baseline: raw.rate, BaseDisp: rate(raw.rate),
		Extra: []string{fmt.Sprintf("%d jobs; CPU per job: worker %s + redis %s, raw asynq server %s + redis %s",
			n, us(goW.cpuPerJ), us(goW.redisPer), us(raw.cpuPerJ), us(raw.redisPer))},
	})
	s.res.Throughput = append(s.res.Throughput, barGroup{Label: "B9 in-process Go", Jobforge: goW.rate, Raw: raw.rate})
	s.logf("in-process Go worker %s, raw %s (%.2f×)", rate(goW.rate), rate(raw.rate), goW.rate/raw.rate)

	remoteRow := func(label, what string, jobs int, r drainRun) {
		s.res.add(row{
			Bench: "B9", What: what, Value: r.rate, Unit: "jobs/s",
			Display:  fmt.Sprintf("%s (%.2f× in-process)", rate(r.rate), r.rate/goW.rate),
			Baseline: raw.rate, BaseDisp: rate(raw.rate),
			Extra: []string{fmt.Sprintf("%d jobs; CPU per job: worker serving the protocol %s + remote worker %s + redis %s",
				jobs, us(r.cpuEach[0]), us(r.cpuEach[1]), us(r.redisPer))},
		})
		s.res.Throughput = append(s.res.Throughput, barGroup{Label: "B9 " + label, Jobforge: r.rate, Raw: raw.rate})
		s.logf("%s: %s, %.2f× in-process Go worker, %.2f× raw; CPU/job serving worker %s + remote worker %s + redis %s",
			label, rate(r.rate), r.rate/goW.rate, r.rate/raw.rate, us(r.cpuEach[0]), us(r.cpuEach[1]), us(r.redisPer))
	}

	goClient, err := s.remoteDrainRun(ctx, "remote-go", n, func(addr string) (string, []string) {
		return selfExe(), []string{"remote-worker", "-addr", addr, "-max-jobs", slots}
	})
	if err != nil {
		return fmt.Errorf("remote Go worker: %w", err)
	}
	remoteRow("remote Go", fmt.Sprintf("no-op jobs drained by one remote Go worker process on the worker protocol (max_jobs %s), via one worker process", slots), n, goClient)

	pyWhat := fmt.Sprintf("no-op jobs drained by one remote Python worker process (grpcio, max_jobs %s), via one worker process", slots)
	py, script, skip := s.pythonWorker(ctx)
	if skip != "" {
		s.res.add(row{Bench: "B9", What: pyWhat, Display: "skipped: " + skip,
			Extra: []string{"needs python3 with grpcio and grpc_tools (Debian: python3-grpcio python3-grpc-tools; `make deps`)"}})
		s.logf("remote Python worker skipped: %s", skip)
		return nil
	}
	pyN := s.pythonJobs
	if pyN != n {
		pyWhat = strings.Replace(pyWhat, "no-op jobs", fmt.Sprintf("%d no-op jobs", pyN), 1)
	}
	pyRun, err := s.remoteDrainRun(ctx, "remote-python", pyN, func(addr string) (string, []string) {
		return py, []string{script, addr, slots}
	})
	if err != nil {
		return fmt.Errorf("remote Python worker: %w", err)
	}
	remoteRow("remote Python", pyWhat, pyN, pyRun)
	return nil
}
