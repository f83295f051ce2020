//go:build faults

// Package faults_test holds jobforge's reliability contract to account with
// real processes: it builds the API and worker binaries, runs them against a
// redis-server of its own with an append-only file fsynced on every write,
// and kills or stops workers, the API and Redis itself under load.
//
// Each test counts handler executions per job id from the workers' logs (an
// effect ledger), checks what the job records say afterwards, prints one
// line of figures starting with "faults: <scenario>:" and then asserts the
// targets: no acknowledged job is lost, duplicates only where a worker died
// under a running job, orphans run again within the recovery bound.
//
// Run with `make test-faults`. The tests run one at a time: their timings
// are the measurement, and the machine they run on may have two cores.
package faults_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobforge/jobforge/internal/proctest"
	"github.com/jobforge/jobforge/internal/redistest"
)

func TestMain(m *testing.M) { proctest.Main(m) }

// raceBinaries builds the API and worker with the race detector: the fault
// paths (recovery, shutdown, reconnects) are where data races hide.
const raceBinaries = true

// recoveryBound is how soon after a worker dies its jobs must run again;
// requeueBound how soon jobs a stopping worker gave back run again on an
// idle worker ("at once").
const (
	recoveryBound = 10 * time.Second
	requeueBound  = 2 * time.Second
)

// cluster is one scenario's system: a durable redis-server, the API on
// fixed ports (so that a restarted API is where clients left it, as behind
// a Service), and any number of workers, including dead ones whose logs
// still count in the ledger.
type cluster struct {
	t                 *testing.T
	redis             *redistest.Server
	apiBin, workerBin string
	grpcAddr          string
	httpAddr          string
	base              string
	client            *http.Client
	// redisURL is what the processes connect to (the Redis above unless
	// the scenario says otherwise, e.g. its sentinel); apiEnv is added to
	// the API's environment.
	redisURL string
	apiEnv   []string

	mu      sync.Mutex
	api     *proctest.Process
	apis    []*proctest.Process // every API process started, the current one last
	workers []*proctest.Process
	exits   map[*proctest.Process]time.Time // when each worker that ended did
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	srv := redistest.NewServer(t, redistest.Durable())
	return newClusterOn(t, srv, srv.URL(0))
}

// newClusterOn is newCluster on a Redis of the scenario's own, reached
// through redisURL.
func newClusterOn(t *testing.T, srv *redistest.Server, redisURL string) *cluster {
	t.Helper()
	bins := proctest.Build(t, raceBinaries, "./cmd/api", "./cmd/worker")
	transport := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	t.Cleanup(transport.CloseIdleConnections)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(t))
	c := &cluster{
		t:         t,
		redis:     srv,
		redisURL:  redisURL,
		apiBin:    bins["api"],
		workerBin: bins["worker"],
		grpcAddr:  fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(t)),
		httpAddr:  httpAddr,
		base:      "http://" + httpAddr,
		// Long enough to see a hang, short enough to stay within the test.
		client: &http.Client{Transport: transport, Timeout: 15 * time.Second},
	}
	t.Cleanup(c.keepLogs)
	return c
}

// keepLogs writes the logs of every process of a failed test to
// $ARTIFACTS_DIR/faults/<test>/ (out/faults/<test>/ by default): the test
// log has only the figures and the targets missed.
func (c *cluster) keepLogs() {
	if !c.t.Failed() {
		return
	}
	dir := os.Getenv("ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "out")
	}
	dir = filepath.Join(dir, "faults", c.t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.t.Logf("keep logs: %v", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	write := func(name string, p *proctest.Process) {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(strings.Join(p.Stderr(), "\n")+"\n"), 0o644); err != nil {
			c.t.Logf("keep logs: %v", err)
		}
	}
	for i, p := range c.apis {
		write(fmt.Sprintf("api-%d.log", i+1), p)
	}
	for i, p := range c.workers {
		write(fmt.Sprintf("worker-%d.log", i+1), p)
	}
	abs, _ := filepath.Abs(dir)
	c.t.Logf("process logs: %s", abs)
}

// env is what every process gets: the scenario's Redis, no authentication,
// no rate limits (the load is the test's own), JSON logs at debug level so
// that workers write the "job attempt started" lines of the ledger.
func (c *cluster) env() []string {
	return []string{
		"REDIS_URL=" + c.redisURL,
		"JOBFORGE_AUTH_DISABLED=true",
		"JOBFORGE_LOG_LEVEL=debug",
		"JOBFORGE_LOG_FORMAT=json",
		"JOBFORGE_RATE_LIMIT_WRITE=0",
		"JOBFORGE_RATE_LIMIT_READ=0",
		"JOBFORGE_TENANT_RATE_LIMIT_WRITE=0",
		"JOBFORGE_TENANT_RATE_LIMIT_READ=0",
	}
}

// startAPI starts (or restarts) the API on the cluster's fixed ports.
func (c *cluster) startAPI() *proctest.Process {
	c.t.Helper()
	p := proctest.StartWith(c.t, proctest.Options{Quiet: true}, c.apiBin, append(c.env(), c.apiEnv...), "api started",
		"-grpc-addr", c.grpcAddr, "-http-addr", c.httpAddr, "-admin-addr", "127.0.0.1:0")
	c.mu.Lock()
	c.api = p
	c.apis = append(c.apis, p)
	c.mu.Unlock()
	return p
}

// startWorker starts one more worker process serving the I/O pool (where
// simulate jobs run); env and args are added to the defaults.
func (c *cluster) startWorker(env []string, args ...string) *proctest.Process {
	c.t.Helper()
	args = append([]string{"-admin-addr", "127.0.0.1:0", "-pools", "io", "-delayed-check-interval", "100ms"}, args...)
	p := proctest.StartWith(c.t, proctest.Options{Quiet: true}, c.workerBin, append(c.env(), env...), "worker started", args...)
	c.mu.Lock()
	c.workers = append(c.workers, p)
	c.mu.Unlock()
	go func() {
		<-p.Done()
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.exits == nil {
			c.exits = map[*proctest.Process]time.Time{}
		}
		c.exits[p] = time.Now()
	}()
	return p
}

// exitTime is when the worker's process ended; zero while it runs.
func (c *cluster) exitTime(p *proctest.Process) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exits[p]
}

// reply is one HTTP exchange as a client saw it.
type reply struct {
	code    int
	body    map[string]any
	raw     string
	header  http.Header
	start   time.Time
	latency time.Duration
	err     error // transport error: no HTTP answer at all
}

func (r reply) String() string {
	if r.err != nil {
		return fmt.Sprintf("error after %s: %v", r.latency, r.err)
	}
	return fmt.Sprintf("HTTP %d after %s: %s", r.code, r.latency, strings.TrimSpace(r.raw))
}

// call makes one request; it never fails the test, so load goroutines can
// use it. headers are name, value pairs.
func (c *cluster) call(method, path, body string, headers ...string) reply {
	r := reply{start: time.Now()}
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		r.err = err
		return r
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.client.Do(req)
	if err != nil {
		r.latency, r.err = time.Since(r.start), err
		return r
	}
	raw, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	r.latency = time.Since(r.start)
	if err != nil {
		r.err = err
		return r
	}
	r.code, r.header, r.raw = resp.StatusCode, resp.Header, string(raw)
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// simulate is a simulate job's create request.
type simulate struct {
	durationMillis int
	outcome        string
	maxAttempts    int
}

func (s simulate) body() string {
	payload := map[string]any{}
	if s.durationMillis > 0 {
		payload["duration_millis"] = s.durationMillis
	}
	if s.outcome != "" {
		payload["outcome"] = s.outcome
	}
	req := map[string]any{"type": "simulate", "payload": payload}
	if s.maxAttempts > 0 {
		req["maxAttempts"] = s.maxAttempts
	}
	b, _ := json.Marshal(req)
	return string(b)
}

// create submits one job and returns its name, or "" with the reply when
// the API did not acknowledge it.
func (c *cluster) create(s simulate, headers ...string) (string, reply) {
	r := c.call(http.MethodPost, "/v1/jobs", s.body(), headers...)
	if r.err == nil && r.code/100 == 2 {
		if name, _ := r.body["name"].(string); name != "" {
			return name, r
		}
	}
	return "", r
}

// createAll submits the jobs from a few concurrent clients and returns
// their names in order ("" for those not acknowledged) and the first
// refusal seen.
func (c *cluster) createAll(specs []simulate) ([]string, *reply) {
	names := make([]string, len(specs))
	var (
		mu      sync.Mutex
		refusal *reply
		wg      sync.WaitGroup
		next    = make(chan int)
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				name, r := c.create(specs[i])
				names[i] = name
				if name == "" {
					mu.Lock()
					if refusal == nil {
						refusal = &r
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range specs {
		next <- i
	}
	close(next)
	wg.Wait()
	return names, refusal
}

// job is a job record as REST returns it.
type job map[string]any

func (j job) state() string { s, _ := j["state"].(string); return s }

func (j job) int(field string) int {
	switch v := j[field].(type) {
	case float64:
		return int(v)
	case string: // int64 fields are JSON strings
		n, _ := strconv.Atoi(v)
		return n
	}
	return 0
}

func (j job) time(field string) time.Time {
	s, _ := j[field].(string)
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

func (j job) String() string {
	b, _ := json.Marshal(j)
	return string(b)
}

func terminal(state string) bool {
	return state == "SUCCEEDED" || state == "FAILED" || state == "CANCELLED"
}

// get reads one job record; nil when the API does not know it.
func (c *cluster) get(name string) (job, reply) {
	r := c.call(http.MethodGet, "/v1/"+name, "")
	if r.err != nil || r.code != http.StatusOK {
		return nil, r
	}
	return job(r.body), r
}

// snapshot lists every job of the cluster (each test has a Redis of its
// own), page by page.
func (c *cluster) snapshot() (map[string]job, error) {
	out := map[string]job{}
	token := ""
	for {
		r := c.call(http.MethodGet, "/v1/jobs?page_size=1000&page_token="+url.QueryEscape(token), "")
		if r.err != nil || r.code != http.StatusOK {
			return nil, fmt.Errorf("list jobs: %s", r)
		}
		list, _ := r.body["jobs"].([]any)
		for _, raw := range list {
			if m, ok := raw.(map[string]any); ok {
				out[m["name"].(string)] = job(m)
			}
		}
		token, _ = r.body["nextPageToken"].(string)
		if token == "" {
			return out, nil
		}
	}
}

// settle polls until every named job is terminal or the deadline passes,
// calling tick after each poll (a supervisor, say). It returns the final
// records (nil for a job the API does not know), the time each job was
// first seen terminal, and the names that never reached a terminal state:
// the lost ones.
func (c *cluster) settle(names []string, deadline time.Time, tick func()) (map[string]job, map[string]time.Time, []string) {
	c.t.Helper()
	seen := map[string]time.Time{}
	final := map[string]job{}
	poll := time.NewTicker(200 * time.Millisecond)
	defer poll.Stop()
	for {
		snap, err := c.snapshot()
		now := time.Now()
		if err == nil {
			for _, n := range names {
				if j, ok := snap[n]; ok && terminal(j.state()) {
					final[n] = j
					if _, ok := seen[n]; !ok {
						seen[n] = now
					}
				}
			}
		}
		if len(seen) == len(names) || now.After(deadline) {
			break
		}
		if tick != nil {
			tick()
		}
		<-poll.C
	}
	// A listing shows what the index holds; read the stragglers one by one.
	var lost []string
	for _, n := range names {
		if _, ok := final[n]; ok {
			continue
		}
		j, r := c.get(n)
		if j != nil && terminal(j.state()) {
			final[n], seen[n] = j, time.Now()
			continue
		}
		switch {
		case j != nil:
			final[n] = j
			if len(lost) < 3 {
				c.t.Logf("lost job %s: %s", n, j)
			}
		case len(lost) < 3:
			c.t.Logf("lost job %s: %s", n, r)
		}
		lost = append(lost, n)
	}
	return final, seen, lost
}

// busy is how many I/O slots a worker has busy, from its admin port.
func busy(p *proctest.Process) int {
	resp, err := http.Get("http://" + p.Field("worker started", "admin_addr") + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, `jobforge_worker_slots_busy{pool="io"} `); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return 0
}

// exited reports whether the process has ended.
func exited(p *proctest.Process) bool {
	select {
	case <-p.Done():
		return true
	default:
		return false
	}
}

// exitStatus says how the process ended, without waiting for it.
func exitStatus(p *proctest.Process) string {
	if !exited(p) {
		return "still running"
	}
	if err := p.ExitErr(); err != nil {
		return err.Error()
	}
	return "exit status 0"
}

// execution is one start of a job's handler, from a worker's
// "job attempt started" log line.
type execution struct {
	attempt int
	at      time.Time
	worker  int // index in cluster.workers
}

// ledger counts handler executions per job name from every worker the
// cluster ever started, dead ones included, in time order.
func (c *cluster) ledger() map[string][]execution {
	c.mu.Lock()
	workers := append([]*proctest.Process(nil), c.workers...)
	c.mu.Unlock()
	out := map[string][]execution{}
	for i, w := range workers {
		for _, l := range w.Lines() {
			if l["msg"] != "job attempt started" {
				continue
			}
			id, _ := l["job_id"].(string)
			attempt, _ := l["attempt"].(float64)
			at, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(l["time"]))
			out["jobs/"+id] = append(out["jobs/"+id], execution{attempt: int(attempt), at: at, worker: i})
		}
	}
	for _, ex := range out {
		sort.Slice(ex, func(a, b int) bool { return ex[a].at.Before(ex[b].at) })
	}
	return out
}

// twice returns the names among names that the ledger saw executed more
// than once.
func twice(led map[string][]execution, names []string) []string {
	var out []string
	for _, n := range names {
		if len(led[n]) > 1 {
			out = append(out, n)
		}
	}
	return out
}

// ledgerGaps returns the succeeded jobs the ledger never saw start: the
// ledger must see every execution for its duplicate counts to mean
// anything.
func ledgerGaps(led map[string][]execution, final map[string]job) []string {
	var out []string
	for n, j := range final {
		if j != nil && j.state() == "SUCCEEDED" && len(led[n]) == 0 {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// report prints the scenario's line of figures: name=value pairs in the
// order given, durations in seconds, negative durations as "n/a".
func report(scenario string, pairs ...any) {
	var b strings.Builder
	fmt.Fprintf(&b, "faults: %s:", scenario)
	for i := 0; i+1 < len(pairs); i += 2 {
		v := pairs[i+1]
		switch d := v.(type) {
		case time.Duration:
			if d < 0 {
				v = "n/a"
			} else {
				v = fmt.Sprintf("%.2f", d.Seconds())
			}
		case float64:
			v = fmt.Sprintf("%.2f", d)
		}
		fmt.Fprintf(&b, " %v=%v", pairs[i], v)
	}
	fmt.Fprintln(os.Stdout, b.String())
}

// check records a violated target without stopping the test, so that one
// run reports every target it misses.
func check(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	if !ok {
		t.Errorf(format, args...)
	}
}

// sample is up to n names, for error messages.
func sample(names []string, n int) string {
	if len(names) > n {
		return strings.Join(names[:n], ", ") + fmt.Sprintf(" and %d more", len(names)-n)
	}
	return strings.Join(names, ", ")
}

// acknowledged drops the names of jobs the API did not acknowledge.
func acknowledged(names []string) []string {
	var out []string
	for _, n := range names {
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}

// count returns how many jobs satisfy cond.
func count(final map[string]job, names []string, cond func(job) bool) int {
	n := 0
	for _, name := range names {
		if j := final[name]; j != nil && cond(j) {
			n++
		}
	}
	return n
}

// pending is the number of jobs waiting in the default queue, or -1 when
// the API cannot say.
func (c *cluster) pending() int {
	r := c.call(http.MethodGet, "/v1/queues", "")
	if r.err != nil || r.code != http.StatusOK {
		return -1
	}
	queues, _ := r.body["queues"].([]any)
	for _, raw := range queues {
		if q, ok := raw.(map[string]any); ok && q["name"] == "queues/default" {
			return job(q).int("pending")
		}
	}
	return 0
}

// running lists the jobs whose records say RUNNING, with the start time of
// their current attempt.
func (c *cluster) running() (map[string]time.Time, error) {
	snap, err := c.snapshot()
	if err != nil {
		return nil, err
	}
	out := map[string]time.Time{}
	for n, j := range snap {
		if j.state() == "RUNNING" {
			out[n] = j.time("startTime")
		}
	}
	return out, nil
}

// executions is the ledger's total count.
func executions(led map[string][]execution) int {
	n := 0
	for _, ex := range led {
		n += len(ex)
	}
	return n
}

// recordOf shows the first named record, for error messages.
func recordOf(final map[string]job, names []string) string {
	if len(names) == 0 || final[names[0]] == nil {
		return "-"
	}
	return final[names[0]].String()
}

// waitFor polls cond every interval until it holds or timeout passes, then
// fails the test.
func waitFor(t *testing.T, timeout, interval time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %s", timeout, msg)
		}
		<-tick.C
	}
}
