//go:build faults

package faults_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWorkerSIGTERMWithLongJobs stops a worker (SIGTERM, -shutdown-timeout
// 2s) while it runs short jobs that fit in the grace period and long ones
// that do not, as a rolling restart does. The short ones finish there; the
// long ones are put back at once, run to success on another worker without
// consuming an attempt (jobs allowed one attempt succeed), and no job runs
// more attempts than it is allowed.
func TestWorkerSIGTERMWithLongJobs(t *testing.T) {
	const (
		grace   = 2 * time.Second
		short   = 4
		long    = 12
		longMax = 8000
	)
	c := newCluster(t)
	c.startAPI()
	victim := c.startWorker(nil, "-concurrency", "16", "-shutdown-timeout", grace.String())

	var specs []simulate
	for i := range short {
		specs = append(specs, simulate{durationMillis: 1500 + 100*i, maxAttempts: 3})
	}
	for i := range long {
		s := simulate{durationMillis: longMax - 100*i, maxAttempts: 3}
		if i%2 == 0 {
			s.maxAttempts = 1
		}
		specs = append(specs, s)
	}
	names, refusal := c.createAll(specs)
	require.Nil(t, refusal, "every create is acknowledged; first refusal: %v", refusal)
	waitFor(t, 30*time.Second, 50*time.Millisecond, func() bool {
		r, err := c.running()
		return err == nil && len(r) == len(names)
	}, "every job to run on the victim")
	atTerm, err := c.running()
	require.NoError(t, err)

	// The short jobs started moments ago: they end within the grace period.
	termAt := time.Now()
	require.NoError(t, victim.Signal(syscall.SIGTERM))
	c.startWorker(nil, "-concurrency", "32") // where the interrupted jobs go
	survivorReady := time.Now()
	waitFor(t, grace+10*time.Second, 10*time.Millisecond, func() bool { return exited(victim) }, "the victim to exit after SIGTERM")
	exitedAfter := time.Since(termAt)
	exitErr := victim.ExitErr()

	final, _, lost := c.settle(names, time.Now().Add(time.Minute), nil)
	led := c.ledger()

	var interrupted, shortRerun, overLimit, consumed []string
	requeue := time.Duration(-1) // latest restart of an interrupted job once it could restart
	// The long jobs are handed back when the grace period ends, and can
	// start again once the other worker is ready.
	from := termAt.Add(grace)
	if survivorReady.After(from) {
		from = survivorReady
	}
	for i, n := range names {
		j := final[n]
		if j == nil {
			continue
		}
		if j.int("attempts") > specs[i].maxAttempts {
			overLimit = append(overLimit, n)
		}
		started := j.time("startTime")
		if !started.After(atTerm[n]) {
			continue
		}
		if i < short {
			shortRerun = append(shortRerun, n)
			continue
		}
		interrupted = append(interrupted, n)
		requeue = max(requeue, started.Sub(from), 0)
		if j.int("attempts") != 1 {
			consumed = append(consumed, n)
		}
	}
	single := count(final, names, func(j job) bool { return j.int("maxAttempts") == 1 })
	singleOK := count(final, names, func(j job) bool { return j.int("maxAttempts") == 1 && j.state() == "SUCCEEDED" })
	succeeded := count(final, names, func(j job) bool { return j.state() == "SUCCEEDED" })
	dup := twice(led, names)
	dupShort := twice(led, names[:short])
	gaps := ledgerGaps(led, final)

	report("worker-sigterm",
		"jobs", len(names), "acknowledged", len(names), "lost", len(lost), "executed_twice", len(dup),
		"recovery_s", requeue, "exit_s", exitedAfter, "interrupted", len(interrupted),
		"short_rerun", len(shortRerun)+len(dupShort), "attempts_over_max", len(overLimit),
		"attempt_consumed", len(consumed), "max_attempts_1_succeeded", singleOK, "max_attempts_1", single,
		"succeeded", succeeded, "ledger_executions", executions(led), "ledger_gaps", len(gaps))

	check(t, exitErr == nil, "the worker did not exit cleanly after SIGTERM: %v", exitErr)
	check(t, exitedAfter <= grace+3*time.Second, "the worker took %s to exit after SIGTERM with a %s shutdown timeout", exitedAfter, grace)
	check(t, len(lost) == 0, "%d acknowledged jobs never reached a terminal state: %s", len(lost), sample(lost, 5))
	check(t, succeeded == len(names), "%d of %d jobs succeeded; e.g. %s", succeeded, len(names), firstNot(final, names, "SUCCEEDED"))
	check(t, len(shortRerun)+len(dupShort) == 0, "jobs that fit in the grace period ran again: %s", sample(append(shortRerun, dupShort...), 4))
	check(t, len(interrupted) == long, "%d of %d long jobs ran again after the shutdown", len(interrupted), long)
	check(t, requeue >= 0 && requeue <= requeueBound, "interrupted jobs started again up to %s after the grace period; want at once (within %s)", requeue, requeueBound)
	check(t, len(overLimit) == 0, "%d jobs ran more attempts than allowed, e.g. %s", len(overLimit), recordOf(final, overLimit))
	check(t, len(consumed) == 0, "the shutdown consumed an attempt of %d jobs, e.g. %s", len(consumed), recordOf(final, consumed))
	check(t, singleOK == single, "%d of %d jobs allowed one attempt succeeded", singleOK, single)
	check(t, len(gaps) == 0, "the ledger saw no execution of %d succeeded jobs (no \"job attempt started\" lines?), e.g. %s", len(gaps), sample(gaps, 3))
}

// firstNot shows the first record not in the given state.
func firstNot(final map[string]job, names []string, state string) string {
	for _, n := range names {
		if j := final[n]; j == nil || j.state() != state {
			return n + ": " + j.String()
		}
	}
	return "-"
}
