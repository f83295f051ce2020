//go:build faults

package faults_test

import (
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWorkerKilledWithJobsRunning kills -9 one of two workers while it
// holds a full set of jobs and a replacement starts a little later, as an
// orchestrator would do. Every job must succeed; the jobs the dead worker
// held (orphans) must run again within the recovery bound, and the crash
// must not consume an attempt: jobs allowed a single attempt still succeed.
func TestWorkerKilledWithJobsRunning(t *testing.T) {
	c := newCluster(t)
	c.startAPI()
	victim := c.startWorker(nil, "-concurrency", "32")
	c.startWorker(nil, "-concurrency", "32")

	const jobs = 500
	rnd := rand.New(rand.NewPCG(1, 1))
	specs := make([]simulate, jobs)
	maxAttempts := map[int]int{}
	for i := range specs {
		specs[i] = simulate{durationMillis: 1000 + rnd.IntN(1000), maxAttempts: 3}
		if i%5 == 0 {
			specs[i].maxAttempts = 1
		}
		maxAttempts[i] = specs[i].maxAttempts
	}
	names, refusal := c.createAll(specs)
	acked := acknowledged(names)
	require.Nil(t, refusal, "every create is acknowledged; first refusal: %v", refusal)
	limit := map[string]int{}
	for i, n := range names {
		limit[n] = maxAttempts[i]
	}

	// Kill late in the run, when the victim holds a full set of jobs and
	// few wait: the survivor then has room for the orphans at once, so the
	// measured time is recovery, not queueing behind the backlog.
	waitFor(t, time.Minute, 50*time.Millisecond, func() bool {
		p := c.pending()
		return p >= 0 && p <= 32 && busy(victim) >= 24
	}, "the victim to hold 24+ jobs with at most 32 waiting")
	held := busy(victim)
	killedAt := time.Now()
	victim.Kill()
	atKill, err := c.running()
	require.NoError(t, err)
	c.startWorker(nil, "-concurrency", "32") // the replacement

	final, _, lost := c.settle(acked, killedAt.Add(time.Minute), nil)
	led := c.ledger()

	// Orphans: jobs RUNNING when the victim died whose attempt then started
	// again (or never ended). The survivor's jobs keep their start time.
	var orphans, stranded []string
	var restarts []time.Duration
	for n, started := range atKill {
		if started.After(killedAt) {
			continue // started by the survivor after the kill
		}
		j := final[n]
		switch {
		case j == nil || !terminal(j.state()):
			orphans, stranded = append(orphans, n), append(stranded, n)
		case j.time("startTime").After(killedAt):
			orphans = append(orphans, n)
			restarts = append(restarts, j.time("startTime").Sub(killedAt))
		}
	}
	sort.Strings(orphans)
	sort.Slice(restarts, func(a, b int) bool { return restarts[a] < restarts[b] })
	firstRestart, lastRestart := time.Duration(-1), time.Duration(-1)
	if len(restarts) > 0 {
		firstRestart, lastRestart = restarts[0], restarts[len(restarts)-1]
	}
	isOrphan := map[string]bool{}
	for _, n := range orphans {
		isOrphan[n] = true
	}

	// The same from the ledger: the first start of an orphan after the kill.
	ledgerRecovery := time.Duration(-1)
	for _, n := range orphans {
		for _, e := range led[n] {
			if d := e.at.Sub(killedAt); d > 0 && (ledgerRecovery < 0 || d < ledgerRecovery) {
				ledgerRecovery = d
			}
		}
	}

	dup := twice(led, acked)
	var wrongDup, consumed, notCounted, unexplained, overLimit, single []string
	for _, n := range dup {
		if !isOrphan[n] || len(led[n]) > 2 {
			wrongDup = append(wrongDup, n)
		}
	}
	for _, n := range acked {
		j := final[n]
		if j == nil {
			continue
		}
		if j.int("attempts") > limit[n] {
			overLimit = append(overLimit, n)
		}
		if limit[n] == 1 {
			single = append(single, n)
		}
		if isOrphan[n] && terminal(j.state()) {
			if j.int("attempts") != 1 {
				consumed = append(consumed, n)
			}
			if j.int("lostAttempts") != 1 {
				notCounted = append(notCounted, n)
			}
			if !hasLostError(j) {
				unexplained = append(unexplained, n)
			}
		}
	}
	var singleOrphans int
	for _, n := range orphans {
		if limit[n] == 1 {
			singleOrphans++
		}
	}
	succeeded := count(final, acked, func(j job) bool { return j.state() == "SUCCEEDED" })
	gaps := ledgerGaps(led, final)

	report("worker-kill",
		"jobs", jobs, "acknowledged", len(acked), "lost", len(lost), "executed_twice", len(dup),
		"recovery_s", firstRestart, "last_orphan_s", lastRestart, "ledger_recovery_s", ledgerRecovery,
		"held_at_kill", held, "orphans", len(orphans), "orphans_max_attempts_1", singleOrphans,
		"stranded_orphans", len(stranded), "attempt_consumed", len(consumed), "lost_attempts_wrong", len(notCounted), "no_lost_error", len(unexplained),
		"succeeded", succeeded, "ledger_executions", executions(led), "ledger_gaps", len(gaps))

	require.NotEmpty(t, orphans, "the kill hit no running job: the scenario measured nothing")
	check(t, len(lost) == 0, "%d acknowledged jobs never reached a terminal state within a minute of the kill: %s", len(lost), sample(lost, 5))
	check(t, succeeded == len(acked), "%d of %d jobs succeeded", succeeded, len(acked))
	check(t, len(restarts) > 0 && firstRestart <= recoveryBound, "first orphan ran again %s after the kill; want within %s", firstRestart, recoveryBound)
	check(t, len(stranded) == 0 && lastRestart <= recoveryBound, "last orphan ran again %s after the kill (%d never did); want all within %s", lastRestart, len(stranded), recoveryBound)
	check(t, len(consumed) == 0, "the crash consumed an attempt of %d orphans (attempts != 1), e.g. %s", len(consumed), recordOf(final, consumed))
	check(t, len(notCounted) == 0, "%d orphans do not show lostAttempts 1, e.g. %s", len(notCounted), recordOf(final, notCounted))
	check(t, len(unexplained) == 0, "%d orphans carry no attempt error marked lost that names the worker, e.g. %s", len(unexplained), recordOf(final, unexplained))
	check(t, len(overLimit) == 0, "%d jobs ran more attempts than allowed: %s", len(overLimit), sample(overLimit, 5))
	check(t, len(gaps) == 0, "the ledger saw no execution of %d succeeded jobs (no \"job attempt started\" lines?), e.g. %s", len(gaps), sample(gaps, 3))
	check(t, len(wrongDup) == 0, "%d jobs ran twice without being orphaned (or more than twice): %s", len(wrongDup), sample(wrongDup, 5))
}

// hasLostError reports whether the job's attempt errors include a lost
// attempt that says which worker stopped.
func hasLostError(j job) bool {
	raw, _ := j["attemptErrors"].([]any)
	for _, r := range raw {
		m, _ := r.(map[string]any)
		msg, _ := m["message"].(string)
		if lost, _ := m["lost"].(bool); lost && strings.Contains(msg, "worker lost") {
			return true
		}
	}
	return false
}
