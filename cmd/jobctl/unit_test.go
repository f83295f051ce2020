package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
)

// fakeJobs is a JobService whose WatchJob streams are scripted per call,
// and which records what clients sent.
type fakeJobs struct {
	jobforgev1.UnimplementedJobServiceServer
	// watch scripts the n-th WatchJob call (0-based).
	watch func(n int, stream grpc.ServerStreamingServer[jobforgev1.JobEvent]) error

	mu     sync.Mutex
	afters []string // after_event_id of each WatchJob call
	auth   []string // authorization metadata of each ListJobTypes call
}

func (f *fakeJobs) WatchJob(req *jobforgev1.WatchJobRequest, stream grpc.ServerStreamingServer[jobforgev1.JobEvent]) error {
	f.mu.Lock()
	n := len(f.afters)
	f.afters = append(f.afters, req.GetAfterEventId())
	f.mu.Unlock()
	return f.watch(n, stream)
}

func (f *fakeJobs) ListJobTypes(ctx context.Context, _ *jobforgev1.ListJobTypesRequest) (*jobforgev1.ListJobTypesResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	f.auth = append(f.auth, strings.Join(md.Get("authorization"), ","))
	f.mu.Unlock()
	return &jobforgev1.ListJobTypesResponse{}, nil
}

// serve runs f on a loopback port and returns the address.
func serve(t *testing.T, f *fakeJobs) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	jobforgev1.RegisterJobServiceServer(srv, f)
	done := make(chan struct{})
	go func() { _ = srv.Serve(lis); close(done) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return lis.Addr().String()
}

const fakeJob = "jobs/0193e0c4-5b1e-7c2a-9f4e-2d6b8a1c3e5f"

func snapshot(id string) *jobforgev1.JobEvent {
	return &jobforgev1.JobEvent{Id: id, Kind: jobforgev1.JobEvent_SNAPSHOT, Time: timestamppb.Now(), State: jobforgev1.Job_RUNNING,
		Job: &jobforgev1.Job{Name: fakeJob, Type: "report", Queue: "default", State: jobforgev1.Job_RUNNING, Attempts: 1, MaxAttempts: 3}}
}

func progress(id string, pct int32) *jobforgev1.JobEvent {
	return &jobforgev1.JobEvent{Id: id, Kind: jobforgev1.JobEvent_PROGRESS, Time: timestamppb.Now(), State: jobforgev1.Job_RUNNING,
		Progress: &jobforgev1.Progress{Percent: pct, Message: fmt.Sprintf("step %d", pct)}}
}

func succeeded(id string) *jobforgev1.JobEvent {
	return &jobforgev1.JobEvent{Id: id, Kind: jobforgev1.JobEvent_STATE_CHANGED, Time: timestamppb.Now(), State: jobforgev1.Job_SUCCEEDED,
		Attempt: 1, Result: structpb.NewStringValue("ok")}
}

func send(stream grpc.ServerStreamingServer[jobforgev1.JobEvent], evs ...*jobforgev1.JobEvent) error {
	for _, ev := range evs {
		if err := stream.Send(ev); err != nil {
			return err
		}
	}
	return nil
}

// TestWatchResumesDroppedStream checks that a watch resumes after the last
// event it saw when the stream breaks, and gives up on errors a retry
// cannot fix.
func TestWatchResumesDroppedStream(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		end      error // how the first stream ends after two events
		noEvents bool  // the first stream ends before its first event
		afters   []string
		code     int
		stdout   []string // lines expected, in order
		stderr   string
	}{
		{
			name: "server unavailable", end: status.Error(codes.Unavailable, "server going away"),
			afters: []string{"", "2-0"}, code: exitOK,
			stdout: []string{fakeJob + "  report on queue default", "RUNNING    attempt 1 of 3", " 50%  step 50", "100%  step 100", "SUCCEEDED", `result: "ok"`},
			stderr: "jobctl: watch stream lost (Unavailable: server going away); resuming after event 2-0\n",
		},
		{
			name: "stream closed before the end", end: nil,
			afters: []string{"", "2-0"}, code: exitOK,
			stdout: []string{" 50%  step 50", "100%  step 100", "SUCCEEDED"},
			stderr: "jobctl: watch stream lost (server closed the stream); resuming after event 2-0\n",
		},
		{
			name: "not found is final", end: status.Error(codes.NotFound, "job gone"),
			afters: []string{""}, code: exitFailure,
			stdout: []string{" 50%  step 50"},
			stderr: "jobctl: job gone (NotFound)\n",
		},
		{
			name: "a stream that never worked is not resumed", end: status.Error(codes.Unavailable, "not serving yet"), noEvents: true,
			afters: []string{""}, code: exitFailure,
			stderr: "jobctl: not serving yet (Unavailable)\n",
		},
		{
			name: "internal error is final", end: status.Error(codes.Internal, "internal error (request id x)"),
			afters: []string{""}, code: exitFailure,
			stderr: "jobctl: internal error (request id x) (Internal)\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &fakeJobs{watch: func(n int, stream grpc.ServerStreamingServer[jobforgev1.JobEvent]) error {
				if n == 0 && tc.noEvents {
					return tc.end
				}
				if n == 0 {
					if err := send(stream, snapshot("1-0"), progress("2-0", 50)); err != nil {
						return err
					}
					return tc.end
				}
				return send(stream, progress("3-0", 100), succeeded("4-0"))
			}}
			out := jobctl(t, "--addr", serve(t, f), "watch", fakeJob)
			require.Equal(t, tc.code, out.code, out.stderr)
			require.Equal(t, tc.afters, f.afters)
			rest := out.stdout
			for _, want := range tc.stdout {
				i := strings.Index(rest, want)
				require.GreaterOrEqual(t, i, 0, "%q after the previous lines in:\n%s", want, out.stdout)
				rest = rest[i+len(want):]
			}
			if !tc.noEvents {
				require.Equal(t, 1, strings.Count(out.stdout, "step 50"), "no event is shown twice")
			}
			require.Equal(t, tc.stderr, out.stderr)
		})
	}
}

// TestTokenSources checks where the bearer token comes from: --token, then
// JOBFORGE_TOKEN, then .jobforge/dev-key in the working directory. Not
// parallel: it changes the working directory.
func TestTokenSources(t *testing.T) {
	f := &fakeJobs{}
	addr := serve(t, f)
	withKey := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(withKey, ".jobforge"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(withKey, devKeyFile), []byte("file-token\n"), 0o600))
	for _, tc := range []struct {
		name string
		dir  string
		env  string // JOBFORGE_TOKEN
		args []string
		want string // authorization metadata sent
	}{
		{name: "flag first", dir: withKey, env: "env-token", args: []string{"--token", "flag-token"}, want: "Bearer flag-token"},
		{name: "then the environment", dir: withKey, env: "env-token", want: "Bearer env-token"},
		{name: "then the dev key", dir: withKey, want: "Bearer file-token"},
		{name: "none", dir: t.TempDir(), want: ""},
		{name: "an empty flag means none", dir: withKey, env: "env-token", args: []string{"--token="}, want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Chdir(tc.dir)
			getenv := func(k string) string {
				if k == "JOBFORGE_TOKEN" {
					return tc.env
				}
				return ""
			}
			var stdout, stderr syncBuffer
			err := run(t.Context(), append(append([]string{"--addr", addr}, tc.args...), "types"), getenv, strings.NewReader(""), &stdout, &stderr)
			require.NoError(t, err, stderr.String())
			f.mu.Lock()
			defer f.mu.Unlock()
			require.Equal(t, tc.want, f.auth[len(f.auth)-1])
		})
	}
}

// TestUsageErrors checks that command lines jobctl cannot run exit with
// code 2 and say why, before anything is sent.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		args   []string
		env    map[string]string
		stderr string
	}{
		{"unknown command", []string{"frobnicate"}, nil, `unknown command "frobnicate" for "jobctl"`},
		{"unknown flag", []string{"list", "--colour"}, nil, "unknown flag: --colour"},
		{"missing argument", []string{"submit"}, nil, "missing TYPE"},
		{"extra argument", []string{"get", "a", "b"}, nil, `unexpected argument "b"`},
		{"bad job name", []string{"watch", "queues/default"}, nil, `"queues/default" is not a job name: want jobs/ID or ID`},
		{"payload not an object", []string{"submit", "primes", "--payload", "[1]"}, nil, "--payload: want a JSON object, got [1]"},
		{"payload not JSON", []string{"submit", "primes", "--payload", "{limit: 5}"}, nil, "--payload: invalid JSON"},
		{"payload integer too large", []string{"submit", "primes", "--payload", `{"limit":9007199254740993}`}, nil, "limit: integer 9007199254740993 is beyond ±2^53"},
		{"payload twice", []string{"submit", "primes", "--payload", "{}", "--payload-file", "p.json"}, nil, "[payload payload-file] were all set"},
		{"missing payload file", []string{"submit", "primes", "--payload-file", "/nonexistent/p.json"}, nil, "--payload-file: open /nonexistent/p.json"},
		{"bad label", []string{"submit", "primes", "--label", "team"}, nil, `--label "team": want key=value`},
		{"bad output", []string{"types", "-o", "yaml"}, nil, `--output: want text or json, got "yaml"`},
		{"bad timeout from the environment", []string{"types"}, map[string]string{"JOBFORGE_TIMEOUT": "soon"}, "JOBFORGE_TIMEOUT: time: invalid duration"},
		{"schedule without cron", []string{"schedules", "create", "--type", "report"}, nil, `required flag(s) "cron" not set`},
		{"unknown schedules subcommand", []string{"schedules", "purge"}, nil, `unexpected argument "purge"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			getenv := func(k string) string { return tc.env[k] }
			var stdout, stderr syncBuffer
			// Nothing listens on port 1: a command that got as far as
			// sending would fail with exit code 1, not 2.
			err := run(t.Context(), append([]string{"--addr", "127.0.0.1:1"}, tc.args...), getenv, strings.NewReader(""), &stdout, &stderr)
			require.Equal(t, exitUsage, exitCode(err), stderr.String())
			require.Contains(t, stderr.String(), tc.stderr)
			require.Contains(t, stderr.String(), "--help' for usage.\n")
			require.Empty(t, stdout.String())
		})
	}
}

// TestPayloadFromStdin checks --payload-file -.
func TestPayloadFromStdin(t *testing.T) {
	t.Parallel()
	o := &options{stdin: strings.NewReader(`{"limit": 1000, "nested": {"a": [1, 2]}}`)}
	s, err := o.parsePayload("", "-")
	require.NoError(t, err)
	require.Equal(t, `{"limit":1000,"nested":{"a":[1,2]}}`, structJSON(s))
}

// TestProgressBar checks the terminal rendering of a watch.
func TestProgressBar(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		percent int32
		want    string
	}{
		{0, "[░░░░░░░░░░]"},
		{42, "[████░░░░░░]"},
		{100, "[██████████]"},
		{150, "[██████████]"},
		{-5, "[░░░░░░░░░░]"},
	} {
		require.Equal(t, tc.want, progressBar(tc.percent, 10), "percent %d", tc.percent)
	}

	var out, errOut syncBuffer
	s := newTextSink(&out, &errOut, false, true, "60")
	s.event(snapshot("1-0"))
	s.event(progress("2-0", 40))
	s.event(progress("3-0", 100))
	s.notice("a notice")
	s.event(succeeded("4-0"))
	s.close()
	got := out.String()
	require.Contains(t, got, "\r\033[K["+strings.Repeat("█", 12)+strings.Repeat("░", 18)+"]  40%  step 40")
	require.Contains(t, got, "\r\033[K["+strings.Repeat("█", 30)+"] 100%  step 100\n", "the bar ends its line before other output")
	require.Regexp(t, `\n\S+  SUCCEEDED\nresult: "ok"\n$`, got)
	require.Equal(t, "jobctl: a notice\n", errOut.String())
	for _, line := range strings.Split(got, "\r\033[K") {
		line, _, _ = strings.Cut(line, "\n")
		require.LessOrEqual(t, len([]rune(line)), 59, "fits in COLUMNS-1: %q", line)
	}

	long := newTextSink(&out, &errOut, false, true, "40")
	long.progress("12:00:00.000", &jobforgev1.Progress{Percent: 10, Message: strings.Repeat("x", 100)})
	require.True(t, strings.HasSuffix(out.String(), "…"), "long messages are cut")
}

// TestJSONOutputIsStable checks that -o json prints the same bytes for the
// same message: two-space indentation, one space after each colon (protojson
// alone varies its spacing from build to build), and NDJSON lines compact.
func TestJSONOutputIsStable(t *testing.T) {
	t.Parallel()
	job := &jobforgev1.Job{Name: fakeJob, Type: "report", Queue: "default", State: jobforgev1.Job_SUCCEEDED,
		Labels: map[string]string{"team": "data"}, Attempts: 1, MaxAttempts: 3,
		Result: structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewNumberValue(1), structpb.NewStringValue("a b")}})}
	var b strings.Builder
	require.NoError(t, printJSON(&b, job))
	require.Equal(t, `{
  "name": "jobs/0193e0c4-5b1e-7c2a-9f4e-2d6b8a1c3e5f",
  "type": "report",
  "queue": "default",
  "state": "SUCCEEDED",
  "result": [
    1,
    "a b"
  ],
  "attempts": 1,
  "maxAttempts": 3,
  "labels": {
    "team": "data"
  }
}
`, b.String())

	b.Reset()
	require.NoError(t, jsonLine(&b, &jobforgev1.JobEvent{Id: "1-0", Kind: jobforgev1.JobEvent_PROGRESS,
		Progress: &jobforgev1.Progress{Percent: 20, Message: "page 1 of 5"}}))
	require.Equal(t, `{"id":"1-0","kind":"PROGRESS","progress":{"percent":20,"message":"page 1 of 5"}}`+"\n", b.String())
}

// TestCompletion checks that `jobctl completion` is listed and prints a
// script for each shell without contacting the API.
func TestCompletion(t *testing.T) {
	t.Parallel()
	var stdout, stderr syncBuffer
	require.NoError(t, run(t.Context(), []string{"--help"}, func(string) string { return "" }, strings.NewReader(""), &stdout, &stderr))
	require.Regexp(t, `(?m)^  completion\s+Generate the autocompletion script`, stdout.String())
	for shell, marker := range map[string]string{
		"bash":       "# bash completion V2 for jobctl",
		"zsh":        "#compdef jobctl",
		"fish":       "# fish completion for jobctl",
		"powershell": "# powershell completion for jobctl",
	} {
		t.Run(shell, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr syncBuffer
			// Nothing listens on port 1: completion must not need the API.
			err := run(t.Context(), []string{"--addr", "127.0.0.1:1", "completion", shell}, func(string) string { return "" },
				strings.NewReader(""), &stdout, &stderr)
			require.NoError(t, err, stderr.String())
			require.Contains(t, stdout.String(), marker)
			require.Empty(t, stderr.String())
		})
	}
}
