//go:build faults

package faults_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/proctest"
)

// TestPoisonPanic runs a job whose handler panics next to ordinary jobs:
// each attempt fails with the panic's message, the job ends FAILED after
// its attempts, and the worker lives on and keeps serving.
func TestPoisonPanic(t *testing.T) {
	c := newCluster(t)
	c.startAPI()
	w := c.startWorker(nil, "-concurrency", "8")

	poison, r := c.create(simulate{outcome: "panic", maxAttempts: 2})
	others := make([]simulate, 20)
	for i := range others {
		others[i] = simulate{durationMillis: 100 + 20*i, maxAttempts: 1}
	}
	names, refusal := c.createAll(others)
	require.Nil(t, refusal, "every ordinary create is acknowledged; first refusal: %v", refusal)
	all := names
	if poison != "" {
		all = append(all, poison)
	}
	final, _, lost := c.settle(all, time.Now().Add(30*time.Second), nil)
	// After the panics, the same worker still runs new jobs.
	later, refusal := c.createAll(others[:5])
	require.Nil(t, refusal, "creates after the panics are acknowledged; first refusal: %v", refusal)
	finalLater, _, lostLater := c.settle(later, time.Now().Add(30*time.Second), nil)
	for n, j := range finalLater {
		final[n] = j
	}
	lost = append(lost, lostLater...)
	ordinary := append(append([]string(nil), names...), later...)
	led := c.ledger()

	p := final[poison]
	var panicErrors int
	for _, e := range attemptErrors(p) {
		if strings.Contains(strings.ToLower(e.message), "panic") {
			panicErrors++
		}
	}
	logged := poison != "" && mentions(w, strings.TrimPrefix(poison, "jobs/"), "panic")
	succeeded := count(final, ordinary, func(j job) bool { return j.state() == "SUCCEEDED" })
	dup := twice(led, ordinary)
	acked := len(acknowledged(append(append([]string{poison}, names...), later...)))

	report("poison-panic",
		"jobs", len(ordinary)+1, "acknowledged", acked, "lost", len(lost), "executed_twice", len(dup),
		"recovery_s", time.Duration(-1), "poison_state", stateOf(p), "poison_attempts", p.int("attempts"),
		"panic_errors", panicErrors, "panic_logged", logged, "worker_exited", exited(w), "succeeded", succeeded,
		"ledger_executions", executions(led), "poison_executions", len(led[poison]))

	require.NotEmpty(t, poison, "a simulate job with outcome \"panic\" is accepted: %s", r)
	check(t, !exited(w), "the worker exited after a panicking handler: %s", exitStatus(w))
	check(t, stateOf(p) == "FAILED" && p.int("attempts") == 2, "the panicking job ends FAILED after its 2 attempts: %s", p)
	check(t, panicErrors == 2, "each failed attempt carries the panic's message: %s", p)
	check(t, logged, "the worker logs the panic of job %s", poison)
	check(t, len(lost) == 0, "%d acknowledged jobs never reached a terminal state: %s", len(lost), sample(lost, 5))
	check(t, succeeded == len(ordinary), "%d of %d ordinary jobs succeeded next to the panicking one", succeeded, len(ordinary))
	check(t, len(dup) == 0, "%d ordinary jobs ran twice: %s", len(dup), sample(dup, 5))
	check(t, len(led[poison]) == 2, "the ledger saw %d executions of the panicking job; want 2", len(led[poison]))
}

// TestPoisonCrash runs a job that makes its worker process exit at once, as
// an OOM kill would, on workers that allow it (-allow-crash-jobs), among
// ordinary jobs, while the test restarts each worker that exits as a
// supervisor would. The job must end FAILED as WORKER_LOST after three lost
// attempts, each re-run within the recovery bound; the ordinary jobs all
// succeed, and run twice only if they were on a worker when it crashed.
func TestPoisonCrash(t *testing.T) {
	const (
		maxLost  = 3
		deadline = 90 * time.Second
	)
	c := newCluster(t)
	c.startAPI()
	crashEnv := []string{"JOBFORGE_ALLOW_CRASH_JOBS=true"}
	slots := []*proctest.Process{
		c.startWorker(crashEnv, "-concurrency", "8"),
		c.startWorker(crashEnv, "-concurrency", "8"),
	}
	supervise := func() {
		for i, w := range slots {
			if exited(w) {
				slots[i] = c.startWorker(crashEnv, "-concurrency", "8")
			}
		}
	}

	poison, r := c.create(simulate{outcome: "crash", maxAttempts: 5})
	var (
		names  []string
		starts []time.Time // start times of the poison job's attempts, as its record showed them
		p      job
	)
	tick := time.NewTicker(100 * time.Millisecond)
	for i, began := 0, time.Now(); poison != "" && time.Since(began) < deadline; i++ {
		supervise()
		if i%2 == 0 { // ordinary jobs keep arriving meanwhile
			if n, _ := c.create(simulate{durationMillis: 200 + 10*(i%50), maxAttempts: 1}); n != "" {
				names = append(names, n)
			}
		}
		if j, _ := c.get(poison); j != nil {
			p = j
			if st := j.time("startTime"); !st.IsZero() && (len(starts) == 0 || !st.Equal(starts[len(starts)-1])) {
				starts = append(starts, st)
			}
			if terminal(j.state()) {
				break
			}
		}
		<-tick.C
	}
	tick.Stop()
	final, _, lost := c.settle(names, time.Now().Add(time.Minute), supervise)
	led := c.ledger()

	// Each exit → the poison job's next start.
	c.mu.Lock()
	var exits []time.Time
	crashed := map[int]time.Time{}
	for i, w := range c.workers {
		if at, ok := c.exits[w]; ok {
			exits = append(exits, at)
			crashed[i] = at
		}
	}
	c.mu.Unlock()
	recovery := time.Duration(-1)
	for _, at := range exits {
		for _, st := range starts {
			if st.After(at) {
				recovery = max(recovery, st.Sub(at))
				break
			}
		}
	}
	var wrongDup []string
	dup := twice(led, names)
	for _, n := range dup {
		// Every run but the last must have been cut short by its worker's
		// crash (a job can be caught in two crashes in a row).
		runs := led[n]
		for _, e := range runs[:len(runs)-1] {
			if at, ok := crashed[e.worker]; !ok || e.at.After(at) {
				wrongDup = append(wrongDup, n)
				break
			}
		}
	}
	succeeded := count(final, names, func(j job) bool { return j.state() == "SUCCEEDED" })
	workerLost := strings.Contains(p.String(), "WORKER_LOST")
	gaps := ledgerGaps(led, final)

	report("poison-crash",
		"jobs", len(names)+1, "acknowledged", len(names)+len(acknowledged([]string{poison})), "lost", len(lost),
		"executed_twice", len(dup), "recovery_s", recovery, "worker_exits", len(exits),
		"poison_state", stateOf(p), "poison_attempts", p.int("attempts"), "poison_lost_attempts", p.int("lostAttempts"),
		"worker_lost_reason", workerLost, "succeeded", succeeded,
		"ledger_executions", executions(led), "poison_executions", len(led[poison]), "ledger_gaps", len(gaps))

	require.NotEmpty(t, poison, "a simulate job with outcome \"crash\" is accepted: %s", r)
	check(t, len(exits) == maxLost, "workers exited %d times; want %d (the poison job's lost attempts)", len(exits), maxLost)
	check(t, stateOf(p) == "FAILED" && workerLost, "the crashing job ends FAILED with reason WORKER_LOST: %s", p)
	check(t, p.int("lostAttempts") == maxLost, "the crashing job shows %d lost attempts; want %d: %s", p.int("lostAttempts"), maxLost, p)
	check(t, p.int("attempts") <= p.int("maxAttempts"), "the crashing job shows more attempts than allowed: %s", p)
	check(t, recovery >= 0 && recovery <= recoveryBound, "the crashing job ran again up to %s after its worker died; want within %s", recovery, recoveryBound)
	check(t, len(lost) == 0, "%d acknowledged jobs never reached a terminal state: %s", len(lost), sample(lost, 5))
	check(t, succeeded == len(names), "%d of %d ordinary jobs succeeded, e.g. %s", succeeded, len(names), firstNot(final, names, "SUCCEEDED"))
	check(t, len(wrongDup) == 0, "%d ordinary jobs ran twice without their worker crashing under them: %s", len(wrongDup), sample(wrongDup, 5))
	check(t, len(gaps) == 0, "the ledger saw no execution of %d succeeded jobs (no \"job attempt started\" lines?), e.g. %s", len(gaps), sample(gaps, 3))
}

// TestPoisonCrashNotAllowed runs the crashing job on a worker started
// without -allow-crash-jobs: the attempt fails for good with an error that
// says why, and the worker does not exit.
func TestPoisonCrashNotAllowed(t *testing.T) {
	c := newCluster(t)
	c.startAPI()
	w := c.startWorker(nil, "-concurrency", "4")

	poison, r := c.create(simulate{outcome: "crash", maxAttempts: 3})
	names, refusal := c.createAll([]simulate{{durationMillis: 100}, {durationMillis: 200}, {durationMillis: 300}})
	require.Nil(t, refusal, "every ordinary create is acknowledged; first refusal: %v", refusal)
	all := names
	if poison != "" {
		all = append(all, poison)
	}
	final, _, lost := c.settle(all, time.Now().Add(30*time.Second), nil)
	led := c.ledger()
	p := final[poison]
	errs := attemptErrors(p)
	clear := len(errs) == 1 && errs[0].permanent && strings.Contains(strings.ToLower(errs[0].message), "crash")
	succeeded := count(final, names, func(j job) bool { return j.state() == "SUCCEEDED" })

	report("poison-crash-disallowed",
		"jobs", len(names)+1, "acknowledged", len(acknowledged(all)), "lost", len(lost),
		"executed_twice", len(twice(led, all)), "recovery_s", time.Duration(-1),
		"poison_state", stateOf(p), "poison_attempts", p.int("attempts"), "permanent_clear_error", clear,
		"worker_exited", exited(w), "succeeded", succeeded)

	require.NotEmpty(t, poison, "a simulate job with outcome \"crash\" is accepted: %s", r)
	check(t, !exited(w), "a worker without -allow-crash-jobs exited: %s", exitStatus(w))
	check(t, stateOf(p) == "FAILED" && p.int("attempts") == 1, "the crashing job fails at its first attempt: %s", p)
	check(t, clear, "the attempt fails permanently with an error that mentions the crash: %s", p)
	check(t, len(lost) == 0, "%d acknowledged jobs never reached a terminal state: %s", len(lost), sample(lost, 5))
	check(t, succeeded == len(names), "%d of %d ordinary jobs succeeded", succeeded, len(names))
}

type attemptError struct {
	message   string
	permanent bool
}

func attemptErrors(j job) []attemptError {
	raw, _ := j["attemptErrors"].([]any)
	var out []attemptError
	for _, r := range raw {
		m, _ := r.(map[string]any)
		msg, _ := m["message"].(string)
		perm, _ := m["permanent"].(bool)
		out = append(out, attemptError{message: msg, permanent: perm})
	}
	return out
}

func stateOf(j job) string {
	if j == nil {
		return "UNKNOWN"
	}
	return j.state()
}

// mentions reports whether any log line of the process about the job has
// a value containing word (case-insensitive).
func mentions(p *proctest.Process, jobID, word string) bool {
	for _, l := range p.Lines() {
		if l["job_id"] != jobID {
			continue
		}
		for _, v := range l {
			if strings.Contains(strings.ToLower(fmt.Sprint(v)), word) {
				return true
			}
		}
	}
	return false
}
