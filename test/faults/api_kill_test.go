//go:build faults

package faults_test

import (
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAPIKilledUnderIdempotentRetries kills -9 the API five times while
// clients create jobs, each with an Idempotency-Key that it retries until
// it gets an answer, as a careful client does. Every key must converge to
// one job (never a 500), asking again later returns that job, every such
// job runs to success, and none runs twice or exists without its key.
func TestAPIKilledUnderIdempotentRetries(t *testing.T) {
	c := newCluster(t)
	c.startAPI()
	c.startWorker(nil, "-concurrency", "32")

	const (
		clients   = 6
		kills     = 5
		between   = 1500 * time.Millisecond
		keyBudget = 20 * time.Second
	)
	type keyRun struct {
		key       string
		names     map[string]int // job name → 2xx answers naming it
		codes     map[int]int
		errs      int
		took      time.Duration // first request → first 2xx
		converged bool
	}
	body := simulate{durationMillis: 200, maxAttempts: 3}.body()
	var (
		stop atomic.Bool
		wg   sync.WaitGroup
		runs = make([][]*keyRun, clients)
	)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; !stop.Load(); n++ {
				k := &keyRun{key: fmt.Sprintf("fault-%d-%d", i, n), names: map[string]int{}, codes: map[int]int{}}
				began := time.Now()
				for time.Since(began) < keyBudget {
					r := c.call(http.MethodPost, "/v1/jobs", body, "Idempotency-Key", k.key)
					if r.err == nil {
						k.codes[r.code]++
					} else {
						k.errs++
					}
					if name, _ := r.body["name"].(string); r.err == nil && r.code/100 == 2 && name != "" {
						k.names[name]++
						k.converged, k.took = true, time.Since(began)
						break
					}
					<-time.After(50 * time.Millisecond) // client backoff
				}
				runs[i] = append(runs[i], k)
			}
		}()
	}
	var restarts []time.Duration
	for range kills {
		<-time.After(between) // load shape, not a wait for a condition
		killedAt := time.Now()
		c.api.Kill()
		c.startAPI()
		restarts = append(restarts, time.Since(killedAt))
	}
	<-time.After(between)
	stop.Store(true)
	wg.Wait()

	// Every key once more, after the dust settled: the same job, 200.
	var keys []*keyRun
	for _, rs := range runs {
		keys = append(keys, rs...)
	}
	var (
		unconverged, diverged, reaskFailed []string
		http500, conflicts, transport      int
		slowest                            time.Duration
		jobNames                           []string
		byName                             = map[string]string{} // job → key
	)
	for _, k := range keys {
		http500 += k.codes[http.StatusInternalServerError]
		conflicts += k.codes[http.StatusConflict]
		transport += k.errs
		slowest = max(slowest, k.took)
		if !k.converged {
			unconverged = append(unconverged, k.key)
			continue
		}
		if len(k.names) > 1 {
			diverged = append(diverged, k.key)
		}
		for n := range k.names {
			if _, ok := byName[n]; !ok {
				jobNames = append(jobNames, n)
			}
			byName[n] = k.key
		}
		r := c.call(http.MethodPost, "/v1/jobs", body, "Idempotency-Key", k.key)
		if name, _ := r.body["name"].(string); r.err != nil || r.code/100 != 2 || k.names[name] == 0 {
			reaskFailed = append(reaskFailed, fmt.Sprintf("%s: %s", k.key, r))
		}
	}
	// Keys that never converged: ask once more, to report what they say.
	for _, key := range unconverged {
		r := c.call(http.MethodPost, "/v1/jobs", body, "Idempotency-Key", key)
		reaskFailed = append(reaskFailed, fmt.Sprintf("%s (never converged): %s", key, r))
	}
	sort.Strings(jobNames)

	final, _, lost := c.settle(jobNames, time.Now().Add(time.Minute), nil)
	all, err := c.snapshot()
	require.NoError(t, err)
	var extra []string // jobs that no answer named: created behind a key's back
	for n := range all {
		if _, ok := byName[n]; !ok {
			extra = append(extra, n)
		}
	}
	sort.Strings(extra)
	led := c.ledger()
	var everything []string
	for n := range all {
		everything = append(everything, n)
	}
	dup := twice(led, everything)
	succeeded := count(final, jobNames, func(j job) bool { return j.state() == "SUCCEEDED" })
	gaps := ledgerGaps(led, final)
	slowRestart := time.Duration(0)
	for _, d := range restarts {
		slowRestart = max(slowRestart, d)
	}

	report("api-kill",
		"jobs", len(jobNames), "acknowledged", len(keys)-len(unconverged), "lost", len(lost), "executed_twice", len(dup),
		"recovery_s", slowest, "kills", len(restarts), "api_restart_s", slowRestart,
		"keys", len(keys), "unconverged", len(unconverged), "diverged", len(diverged), "http_500", http500,
		"conflicts", conflicts, "transport_errors", transport, "reask_failed", len(reaskFailed),
		"extra_jobs", len(extra), "succeeded", succeeded,
		"ledger_executions", executions(led), "ledger_gaps", len(gaps))

	require.Len(t, restarts, kills)
	check(t, http500 == 0, "%d answers were HTTP 500", http500)
	check(t, len(unconverged) == 0, "%d keys never got a 2xx within %s: %s", len(unconverged), keyBudget, sample(unconverged, 5))
	check(t, len(diverged) == 0, "%d keys named more than one job: %s", len(diverged), sample(diverged, 5))
	check(t, len(reaskFailed) == 0, "%d keys did not return their job when asked again: %s", len(reaskFailed), sample(reaskFailed, 3))
	check(t, conflicts == 0, "%d answers were 409 for a key retried with the same request", conflicts)
	check(t, len(lost) == 0, "%d acknowledged jobs never reached a terminal state: %s", len(lost), sample(lost, 5))
	check(t, succeeded == len(jobNames), "%d of %d jobs succeeded", succeeded, len(jobNames))
	check(t, len(extra) == 0, "%d jobs exist that no answer named (created twice for a key?): %s", len(extra), sample(extra, 5))
	check(t, len(dup) == 0, "%d jobs ran more than once: %s", len(dup), sample(dup, 5))
	check(t, len(gaps) == 0, "the ledger saw no execution of %d succeeded jobs (no \"job attempt started\" lines?), e.g. %s", len(gaps), sample(gaps, 3))
}
