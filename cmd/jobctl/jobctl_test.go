package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/auth"
	"github.com/jobforge/jobforge/internal/proctest"
	"github.com/jobforge/jobforge/internal/redistest"
)

func TestMain(m *testing.M) { proctest.Main(m) }

// commandTimeout bounds every jobctl invocation of the tests, so that a
// watch that never ends fails the test instead of hanging it.
const commandTimeout = 90 * time.Second

// outcome is what one jobctl invocation printed and its exit code.
type outcome struct {
	stdout, stderr string
	code           int
}

// jobctl runs a command line in-process, with an empty environment.
func jobctl(t *testing.T, args ...string) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), commandTimeout)
	defer cancel()
	var stdout, stderr syncBuffer
	err := run(ctx, args, noEnv, strings.NewReader(""), &stdout, &stderr)
	o := outcome{stdout: stdout.String(), stderr: stderr.String(), code: exitCode(err)}
	t.Logf("jobctl %s → exit %d\n%s%s", strings.Join(args, " "), o.code, o.stdout, o.stderr)
	return o
}

func noEnv(string) string { return "" }

// background runs a command line in-process until it ends or cancel is
// called; the test reads its output while it runs.
type background struct {
	stdout, stderr syncBuffer
	cancel         context.CancelFunc
	done           chan int // the exit code
}

func startJobctl(t *testing.T, args ...string) *background {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	b := &background{cancel: cancel, done: make(chan int, 1)}
	go func() {
		defer cancel()
		b.done <- exitCode(run(ctx, args, noEnv, strings.NewReader(""), &b.stdout, &b.stderr))
	}()
	t.Cleanup(func() { cancel(); <-b.done })
	return b
}

// wait returns the exit code once the command has ended.
func (b *background) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-b.done:
		b.done <- code // for the cleanup
		return code
	case <-time.After(commandTimeout + 10*time.Second):
		t.Fatal("jobctl did not end")
		return -1
	}
}

// cluster is a redis-server database, an API process and a worker process.
type cluster struct {
	apiBin   string
	redisURL string
	keysFile string
	token    string
	addr     string // the API's gRPC address
	worker   *proctest.Process
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	apiBin, workerBin := binaries(t)
	c := &cluster{apiBin: apiBin, redisURL: redistest.NewDB(t)}
	token, key, err := auth.NewKey("jobctl-test", "acme", auth.AllScopes, nil)
	require.NoError(t, err)
	c.token = token
	b, err := json.Marshal(map[string]any{"keys": []auth.Key{key}})
	require.NoError(t, err)
	c.keysFile = filepath.Join(t.TempDir(), "keys.json")
	require.NoError(t, os.WriteFile(c.keysFile, b, 0o600))
	api := c.startAPI(t, "127.0.0.1:0")
	c.addr = api.Field("api started", "grpc_addr")
	c.worker = proctest.Start(t, workerBin, c.env(), "worker started",
		"-admin-addr", "127.0.0.1:0", "-poll-interval", "5ms", "-delayed-check-interval", "100ms")
	return c
}

func (c *cluster) env(extra ...string) []string {
	return append([]string{"REDIS_URL=" + c.redisURL, "JOBFORGE_API_KEYS_FILE=" + c.keysFile}, extra...)
}

// startAPI starts another API process on the cluster's database.
func (c *cluster) startAPI(t *testing.T, grpcAddr string, env ...string) *proctest.Process {
	t.Helper()
	return proctest.Start(t, c.apiBin, c.env(env...), "api started",
		"-grpc-addr", grpcAddr, "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0")
}

// jobctl runs a command line against the cluster's API with its key.
func (c *cluster) jobctl(t *testing.T, args ...string) outcome {
	t.Helper()
	return jobctl(t, append([]string{"--addr", c.addr, "--token", c.token}, args...)...)
}

func (c *cluster) start(t *testing.T, args ...string) *background {
	t.Helper()
	return startJobctl(t, append([]string{"--addr", c.addr, "--token", c.token}, args...)...)
}

// submit creates a job and returns its name.
func (c *cluster) submit(t *testing.T, args ...string) string {
	t.Helper()
	out := c.jobctl(t, append([]string{"submit", "-o", "json"}, args...)...)
	require.Equal(t, 0, out.code, out.stderr)
	var j jobforgev1.Job
	require.NoError(t, protojson.Unmarshal([]byte(out.stdout), &j))
	return j.GetName()
}

func (c *cluster) get(t *testing.T, name string) *jobforgev1.Job {
	t.Helper()
	out := c.jobctl(t, "get", name, "-o", "json")
	require.Equal(t, 0, out.code, out.stderr)
	var j jobforgev1.Job
	require.NoError(t, protojson.Unmarshal([]byte(out.stdout), &j))
	return &j
}

// TestJobctl drives a real API and worker with jobctl's commands.
func TestJobctl(t *testing.T) {
	t.Parallel()
	c := newCluster(t)

	out := c.jobctl(t, "types", "-o", "json")
	require.Equal(t, 0, out.code, out.stderr)
	var types jobforgev1.ListJobTypesResponse
	require.NoError(t, protojson.Unmarshal([]byte(out.stdout), &types))
	require.NotEmpty(t, types.GetJobTypes())

	t.Run("types", func(t *testing.T) {
		t.Parallel()
		out := c.jobctl(t, "types")
		require.Equal(t, 0, out.code, out.stderr)
		for _, name := range []string{"primes", "report", "simulate"} {
			require.Regexp(t, `(?m)^`+name+`  \(queue \w+, timeout \S+, \d+ attempts\)$`, out.stdout)
			require.Contains(t, out.stdout, "example: jobctl submit "+name+" --payload '{")
		}
	})

	// Each built-in type's example payload, submitted and waited for.
	wantResult := map[string]string{
		"primes":   `"count":78498`,
		"report":   `"checksum":385`,
		"simulate": `"echo":{"ok":true}`,
	}
	for _, jt := range types.GetJobTypes() {
		t.Run("submit --wait "+jt.GetName()+" example", func(t *testing.T) {
			t.Parallel()
			payload, err := protojson.Marshal(jt.GetExamplePayload())
			require.NoError(t, err)
			out := c.jobctl(t, "submit", jt.GetName(), "--payload", string(payload), "--wait")
			require.Equal(t, 0, out.code, out.stderr)
			require.Regexp(t, `^jobs/\S+ created: `+jt.GetName()+` on queue `+jt.GetQueue()+`, PENDING\n`, out.stdout)
			require.Regexp(t, `(?m)^\S+  SUCCEEDED$`, out.stdout)
			require.Regexp(t, `(?m)^result: \{.*`+regexp.QuoteMeta(wantResult[jt.GetName()]), out.stdout)
			require.Empty(t, out.stderr)
		})
	}

	t.Run("submit --wait failing job", func(t *testing.T) {
		t.Parallel()
		out := c.jobctl(t, "submit", "simulate", "--payload", `{"outcome":"fail","message":"disk on fire","permanent":true}`, "--wait")
		require.Equal(t, exitFailure, out.code)
		require.Regexp(t, `(?m)^\S+  FAILED$`, out.stdout)
		require.Contains(t, out.stdout, "error: attempt 1: disk on fire (permanent)\n")
		require.Regexp(t, `^jobctl: job jobs/\S+ FAILED: disk on fire\n$`, out.stderr)
	})

	t.Run("submit --wait -o json prints the finished job", func(t *testing.T) {
		t.Parallel()
		out := c.jobctl(t, "submit", "simulate", "--payload", `{"result":{"n":7}}`, "--label", "kind=json", "--wait", "-o", "json")
		require.Equal(t, 0, out.code, out.stderr)
		var j jobforgev1.Job
		require.NoError(t, protojson.Unmarshal([]byte(out.stdout), &j))
		require.Equal(t, jobforgev1.Job_SUCCEEDED, j.GetState())
		require.Equal(t, map[string]string{"kind": "json"}, j.GetLabels())
		require.JSONEq(t, `{"attempt":1,"echo":{"n":7}}`, valueJSON(j.GetResult()))
	})

	t.Run("watch shows progress", func(t *testing.T) {
		t.Parallel()
		name := c.submit(t, "report", "--payload", `{"title":"watched","pages":5,"page_millis":300}`)
		out := c.jobctl(t, "watch", name)
		require.Equal(t, 0, out.code, out.stderr)
		require.True(t, strings.HasPrefix(out.stdout, name+"  report on queue default\n"), out.stdout)
		// Progress lines, in order, ending at 100%.
		var pcts []int
		for _, m := range regexp.MustCompile(`(?m)^\S+\s+(\d+)%  page (\d+) of 5$`).FindAllStringSubmatch(out.stdout, -1) {
			p, _ := strconv.Atoi(m[1])
			pcts = append(pcts, p)
		}
		require.NotEmpty(t, pcts, out.stdout)
		require.IsIncreasing(t, pcts)
		require.Equal(t, 100, pcts[len(pcts)-1])
		require.Regexp(t, `(?m)^\S+  SUCCEEDED\nresult: \{"checksum":55,"pages":5,"title":"watched"\}\n$`, out.stdout)
	})

	t.Run("watch -o json prints events as NDJSON", func(t *testing.T) {
		t.Parallel()
		name := c.submit(t, "report", "--payload", `{"pages":3,"page_millis":50}`)
		out := c.jobctl(t, "watch", name, "-o", "json")
		require.Equal(t, 0, out.code, out.stderr)
		lines := strings.Split(strings.TrimSpace(out.stdout), "\n")
		var events []*jobforgev1.JobEvent
		for _, l := range lines {
			ev := &jobforgev1.JobEvent{}
			require.NoError(t, protojson.Unmarshal([]byte(l), ev), l)
			events = append(events, ev)
		}
		require.Equal(t, jobforgev1.JobEvent_SNAPSHOT, events[0].GetKind())
		require.Equal(t, name, events[0].GetJob().GetName())
		last := events[len(events)-1]
		require.Equal(t, jobforgev1.JobEvent_STATE_CHANGED, last.GetKind())
		require.Equal(t, jobforgev1.Job_SUCCEEDED, last.GetState())
	})

	t.Run("get", func(t *testing.T) {
		t.Parallel()
		name := c.submit(t, "simulate", "--payload", `{"result":"done"}`, "--label", "team=data", "--max-attempts", "2", "--timeout", "90s", "--wait")
		id := strings.TrimPrefix(name, "jobs/")
		out := c.jobctl(t, "get", id) // the bare id works too
		require.Equal(t, 0, out.code, out.stderr)
		for _, re := range []string{
			`(?m)^Name:\s+` + regexp.QuoteMeta(name) + `$`,
			`(?m)^State:\s+SUCCEEDED$`,
			`(?m)^Attempts:\s+1 of 2$`,
			`(?m)^Timeout:\s+1m30s per attempt$`,
			`(?m)^Labels:\s+team=data$`,
			`(?m)^Result:\s+\{"attempt":1,"echo":"done"\}$`,
		} {
			require.Regexp(t, re, out.stdout)
		}
	})

	t.Run("list with filter", func(t *testing.T) {
		t.Parallel()
		run := strconv.FormatInt(time.Now().UnixNano(), 36)
		var names []string
		for range 3 {
			names = append(names, c.submit(t, "simulate", "--label", "run="+run))
		}
		other := c.submit(t, "simulate", "--label", "run=other-"+run)
		filter := fmt.Sprintf(`labels.run = %q`, run)

		out := c.jobctl(t, "list", "--filter", filter)
		require.Equal(t, 0, out.code, out.stderr)
		require.Regexp(t, `^NAME\s+TYPE\s+QUEUE\s+STATE\s+PROGRESS\s+ATTEMPTS\s+AGE\s+LABELS\n`, out.stdout)
		for _, n := range names {
			require.Contains(t, out.stdout, n)
		}
		require.NotContains(t, out.stdout, other)
		require.Len(t, strings.Split(strings.TrimSpace(out.stdout), "\n"), 4)

		// One job per page: a single page says how to go on; --all follows.
		out = c.jobctl(t, "list", "--filter", filter, "--page-size", "1")
		require.Equal(t, 0, out.code, out.stderr)
		require.Contains(t, out.stdout, names[2], "newest first")
		require.Regexp(t, `^more jobs follow: --page-token \S+ \(or --all\)\n$`, out.stderr)

		out = c.jobctl(t, "list", "--filter", filter, "--page-size", "1", "--all", "-o", "json")
		require.Equal(t, 0, out.code, out.stderr)
		var resp jobforgev1.ListJobsResponse
		require.NoError(t, protojson.Unmarshal([]byte(out.stdout), &resp))
		var got []string
		for _, j := range resp.GetJobs() {
			got = append(got, j.GetName())
		}
		require.Equal(t, []string{names[2], names[1], names[0]}, got)
		require.Empty(t, resp.GetNextPageToken())

		out = c.jobctl(t, "list", "--filter", `labels.run = "nothing-`+run+`"`)
		require.Equal(t, 0, out.code, out.stderr)
		require.Equal(t, "no jobs\n", out.stdout)
	})

	t.Run("cancel", func(t *testing.T) {
		t.Parallel()
		name := c.submit(t, "simulate", "--payload", `{"duration_millis":600000}`)
		out := c.jobctl(t, "cancel", name, "--reason", "not needed")
		require.Equal(t, 0, out.code, out.stderr)
		require.Equal(t, name+" CANCELLED\n", out.stdout)
		out = c.jobctl(t, "get", name)
		require.Regexp(t, `(?m)^Cancelled:\s+by key:jobctl-test at \S+: not needed$`, out.stdout)

		out = c.jobctl(t, "cancel", name)
		require.Equal(t, exitFailure, out.code)
		require.Equal(t, "jobctl: cannot cancel job: it is CANCELLED (FailedPrecondition)\n", out.stderr)
	})

	t.Run("submit --wait ends when the job is cancelled", func(t *testing.T) {
		t.Parallel()
		bg := c.start(t, "submit", "simulate", "--payload", `{"duration_millis":600000}`, "--wait")
		redistest.Eventually(t, 30*time.Second, func() bool { return strings.Contains(bg.stdout.String(), "RUNNING") },
			"job running: %s", bg.stdout.String())
		name := strings.Fields(bg.stdout.String())[0]
		require.Equal(t, 0, c.jobctl(t, "cancel", name, "--reason", "taking too long").code)
		require.Equal(t, exitFailure, bg.wait(t))
		require.Regexp(t, `(?m)^\S+  CANCELLED\ncancelled by key:jobctl-test: taking too long\n$`, bg.stdout.String())
		require.Equal(t, "jobctl: job "+name+" CANCELLED: taking too long\n", bg.stderr.String())
	})

	t.Run("retry", func(t *testing.T) {
		t.Parallel()
		// The first attempt fails and it is the only one allowed; the retry's succeeds.
		out := c.jobctl(t, "submit", "simulate", "--payload", `{"fail_times":1,"message":"flaky"}`, "--max-attempts", "1", "--wait")
		require.Equal(t, exitFailure, out.code)
		name := strings.Fields(out.stdout)[0]
		require.Equal(t, jobforgev1.Job_FAILED, c.get(t, name).GetState())

		out = c.jobctl(t, "retry", name, "--wait")
		require.Equal(t, 0, out.code, out.stderr)
		require.Regexp(t, `^`+regexp.QuoteMeta(name)+` (PENDING|RUNNING)\n`, out.stdout)
		require.Contains(t, out.stdout, "result: {\"attempt\":2}\n")
		j := c.get(t, name)
		require.Equal(t, jobforgev1.Job_SUCCEEDED, j.GetState())
		require.Equal(t, int32(2), j.GetAttempts())

		out = c.jobctl(t, "retry", name)
		require.Equal(t, exitFailure, out.code)
		require.Contains(t, out.stderr, "(FailedPrecondition)")
	})

	t.Run("Ctrl-C stops a watch", func(t *testing.T) {
		t.Parallel()
		name := c.submit(t, "report", "--payload", `{"pages":600,"page_millis":100}`)
		t.Cleanup(func() { c.jobctl(t, "cancel", name) })
		bg := c.start(t, "watch", name)
		redistest.Eventually(t, 30*time.Second, func() bool { return strings.Contains(bg.stdout.String(), "% ") },
			"progress shown: %s", bg.stdout.String())
		bg.cancel() // what signal.NotifyContext does on SIGINT
		require.Equal(t, exitInterrupted, bg.wait(t))
		require.Equal(t, fmt.Sprintf("jobctl: interrupted: stopped watching %s; the job goes on (jobctl watch %s)\n", name, name), bg.stderr.String())
		require.Equal(t, jobforgev1.Job_RUNNING, c.get(t, name).GetState())
	})

	t.Run("errors", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name   string
			args   []string
			code   int
			stderr string // regexp
		}{
			{"unknown job", []string{"get", "jobs/nope"}, exitFailure, `^jobctl: job "jobs/nope" not found \(NotFound\)\n$`},
			{"unknown type", []string{"submit", "nope"}, exitFailure, `^jobctl: job\.type: .*\(InvalidArgument\)\n`},
			{"payload field violation", []string{"submit", "primes", "--payload", `{"limit":"lots"}`}, exitFailure,
				`^jobctl: job\.payload\.limit: must be an integer, got string \(InvalidArgument\)\n$`},
			{"every field violation listed", []string{"submit", "simulate", "--payload", `{"outcome":"maybe","fail_times":-1}`}, exitFailure,
				`^jobctl: .*\(and 1 more\) \(InvalidArgument\)\n(  - job\.payload\.(outcome: .*|fail_times: must be at least 0, got -1)\n){2}$`},
			{"unknown queue", []string{"queues", "pause", "nope"}, exitFailure, `\(NotFound\)\n$`},
			{"bad filter", []string{"list", "--filter", "colour = red"}, exitFailure, `^jobctl: filter: .*\(InvalidArgument\)\n$`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				out := c.jobctl(t, tc.args...)
				require.Equal(t, tc.code, out.code)
				require.Regexp(t, tc.stderr, out.stderr)
			})
		}
	})

	t.Run("missing or wrong token", func(t *testing.T) {
		t.Parallel()
		require.NoFileExists(t, devKeyFile, "this test needs a directory without a dev key")
		out := jobctl(t, "--addr", c.addr, "types")
		require.Equal(t, exitFailure, out.code)
		require.Equal(t, "jobctl: missing credentials: send `Authorization: Bearer <API key or JWT>` (Unauthenticated)\n"+
			"hint: no token was sent: pass --token, set JOBFORGE_TOKEN, or run jobctl where `make run` wrote .jobforge/dev-key\n", out.stderr)
		require.Empty(t, out.stdout)

		out = jobctl(t, "--addr", c.addr, "--token", "jfk_jobctl-test.wrong", "types")
		require.Equal(t, exitFailure, out.code)
		require.Equal(t, "jobctl: invalid credentials (Unauthenticated)\nhint: the token came from --token\n", out.stderr)
	})

	t.Run("queues and workers", func(t *testing.T) {
		t.Parallel()
		out := c.jobctl(t, "queues")
		require.Equal(t, 0, out.code, out.stderr)
		require.Regexp(t, `^QUEUE\s+PENDING\s+ACTIVE`, out.stdout)
		require.Regexp(t, `(?m)^default\s+\d+`, out.stdout)

		out = c.jobctl(t, "queues", "pause", "low")
		require.Equal(t, 0, out.code, out.stderr)
		require.Equal(t, "queues/low paused (0 pending)\n", out.stdout)
		out = c.jobctl(t, "queues", "-o", "json")
		require.Regexp(t, `"name":\s*"queues/low"[^}]*"paused":\s*true`, out.stdout)
		out = c.jobctl(t, "queues", "resume", "queues/low")
		require.Equal(t, 0, out.code, out.stderr)
		require.Equal(t, "queues/low running (0 pending)\n", out.stdout)

		redistest.Eventually(t, 30*time.Second, func() bool {
			out = c.jobctl(t, "workers")
			return out.code == 0 && strings.Contains(out.stdout, "critical=6,default=3,low=1") && strings.Contains(out.stdout, "cpu=1")
		}, "both worker pools listed: %s", out.stdout)
		require.Regexp(t, `^HOST\s+PID\s+QUEUES\s+BUSY\s+SLOTS\s+STATUS\s+UP\n`, out.stdout)
	})

	t.Run("schedules", func(t *testing.T) {
		t.Parallel()
		out := c.jobctl(t, "schedules", "create", "--cron", "@every 1h", "--tz", "Europe/Berlin", "--type", "report",
			"--payload", `{"pages":1}`, "--label", "team=ops", "--description", "hourly report", "-o", "json")
		require.Equal(t, 0, out.code, out.stderr)
		var s jobforgev1.Schedule
		require.NoError(t, protojson.Unmarshal([]byte(out.stdout), &s))
		require.Equal(t, "Europe/Berlin", s.GetTimeZone())
		require.Equal(t, map[string]string{"team": "ops"}, s.GetJob().GetLabels())

		out = c.jobctl(t, "schedules", "list")
		require.Equal(t, 0, out.code, out.stderr)
		require.Regexp(t, `(?m)^`+regexp.QuoteMeta(s.GetName())+`\s+@every 1h\s+Europe/Berlin\s+report\s+.*hourly report$`, out.stdout)

		out = c.jobctl(t, "schedules", "delete", s.GetName())
		require.Equal(t, 0, out.code, out.stderr)
		require.Equal(t, s.GetName()+" deleted\n", out.stdout)
		out = c.jobctl(t, "schedules", "list")
		require.NotContains(t, out.stdout, s.GetName())

		out = c.jobctl(t, "schedules", "create", "--cron", "every tuesday", "--type", "report")
		require.Equal(t, exitFailure, out.code)
		require.Contains(t, out.stderr, "schedule.cron")
	})

	t.Run("watch resumes after the API restarts", func(t *testing.T) {
		t.Parallel()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(proctest.FreePort(t)))
		api := c.startAPI(t, addr)
		own := *c
		own.addr = addr
		name := own.submit(t, "report", "--payload", `{"pages":30,"page_millis":100}`)
		bg := own.start(t, "watch", name)
		redistest.Eventually(t, 30*time.Second, func() bool { return strings.Contains(bg.stdout.String(), "page 3 of 30") },
			"progress shown: %s", bg.stdout.String())
		api.Kill()
		c.startAPI(t, addr)
		require.Equal(t, 0, bg.wait(t), bg.stderr.String())

		// Every page from the first one seen to the last, once each, in order.
		var pages []int
		for _, m := range regexp.MustCompile(`(?m)page (\d+) of 30$`).FindAllStringSubmatch(bg.stdout.String(), -1) {
			p, _ := strconv.Atoi(m[1])
			pages = append(pages, p)
		}
		require.NotEmpty(t, pages)
		for i := range pages {
			require.Equal(t, pages[0]+i, pages[i], "no page missed or repeated: %v", pages)
		}
		require.Equal(t, 30, pages[len(pages)-1])
		require.Contains(t, bg.stdout.String(), `result: {"checksum":9455,"pages":30,"title":""}`)
		require.Regexp(t, `jobctl: watch stream lost \(Unavailable: .*\); resuming after event \d+-\d+\n`, bg.stderr.String())
	})

	t.Run("TLS with --ca-file", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		certFile, keyFile := selfSigned(t, dir)
		api := c.startAPI(t, "127.0.0.1:0", "JOBFORGE_TLS_CERT="+certFile, "JOBFORGE_TLS_KEY="+keyFile)
		addr := api.Field("api started", "grpc_addr")

		out := jobctl(t, "--addr", addr, "--token", c.token, "--ca-file", certFile, "types")
		require.Equal(t, 0, out.code, out.stderr)
		require.Contains(t, out.stdout, "primes")

		out = jobctl(t, "--addr", addr, "--token", c.token, "--timeout", "5s", "types")
		require.Equal(t, exitFailure, out.code, "plaintext to a TLS port")

		out = jobctl(t, "--addr", addr, "--token", c.token, "--tls", "--timeout", "5s", "types")
		require.Equal(t, exitFailure, out.code, "the self-signed certificate is not in the system roots")
		require.Contains(t, out.stderr, "certificate")
	})
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	return certFile, keyFile
}
