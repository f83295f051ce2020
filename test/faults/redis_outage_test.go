//go:build faults

package faults_test

import (
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// outageAnswer bounds how long an API request may take while Redis is
// unreachable; apiRecovery how soon after Redis returns the API serves
// again and workers run jobs again; outcomeBound how soon an outcome reached while Redis was down
// must be recorded once it is back ("within seconds").
const (
	outageAnswer  = time.Second
	apiRecovery   = 2 * time.Second
	outcomeBound  = 5 * time.Second
	outageLength  = 5 * time.Second
	loadBefore    = 4 * time.Second
	loadAfter     = 4 * time.Second
	clientPace    = 150 * time.Millisecond
	outageClients = 4
)

// TestRedisOutageUnderSubmitLoad kills redis-server (kill -9: its
// append-only file is fsynced on every write) under a steady stream of
// creates and restarts it on the same port five seconds later. Every
// acknowledged job must reach a terminal state; requests during the outage
// answer 503 with Retry-After within a second; the API serves again within
// two seconds of Redis's return; no job runs twice (no worker died), in
// particular none that finished while Redis was down.
func TestRedisOutageUnderSubmitLoad(t *testing.T) {
	c := newCluster(t)
	c.startAPI()
	c.startWorker(nil, "-concurrency", "32")
	c.startWorker(nil, "-concurrency", "32")

	type sent struct {
		name string
		spec simulate
		r    reply
	}
	type probe struct {
		at   time.Time
		code int // 0: no HTTP answer
	}
	var (
		mu     sync.Mutex
		sends  []sent
		probes []probe
		wg     sync.WaitGroup
		stop   = make(chan struct{})
	)
	for i := range outageClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(i), 2))
			pace := time.NewTicker(clientPace)
			defer pace.Stop()
			for {
				select {
				case <-stop:
					return
				case <-pace.C:
				}
				s := simulate{durationMillis: 500 + rnd.IntN(2500), maxAttempts: 3}
				name, r := c.create(s)
				mu.Lock()
				sends = append(sends, sent{name: name, spec: s, r: r})
				mu.Unlock()
			}
		}()
	}
	wg.Add(1)
	go func() { // /readyz as a load balancer would probe it
		defer wg.Done()
		pace := time.NewTicker(50 * time.Millisecond)
		defer pace.Stop()
		for {
			select {
			case <-stop:
				return
			case <-pace.C:
			}
			r := c.call(http.MethodGet, "/readyz", "")
			mu.Lock()
			probes = append(probes, probe{at: r.start.Add(r.latency), code: r.code})
			mu.Unlock()
		}
	}()
	stopLoad := func() {
		select {
		case <-stop:
		default:
			close(stop)
			wg.Wait()
		}
	}
	t.Cleanup(stopLoad)

	<-time.After(loadBefore) // load shape, not a wait for a condition
	atStop, err := c.snapshot()
	require.NoError(t, err)
	stoppedAt := time.Now()
	c.redis.Stop()
	<-time.After(outageLength)
	require.NoError(t, c.redis.Start())
	restartedAt := time.Now()

	// While the load goes on, note when each job is first seen terminal:
	// outcomes reached during the outage must be recorded soon.
	seen := map[string]time.Time{}
	observe := time.NewTicker(250 * time.Millisecond)
	for time.Since(restartedAt) < loadAfter {
		if snap, err := c.snapshot(); err == nil {
			now := time.Now()
			for n, j := range snap {
				if _, ok := seen[n]; !ok && terminal(j.state()) {
					seen[n] = now
				}
			}
		}
		<-observe.C
	}
	observe.Stop()
	stopLoad()

	spec := map[string]simulate{}
	var names []string
	for _, s := range sends {
		if s.name != "" {
			names = append(names, s.name)
			spec[s.name] = s.spec
		}
	}
	final, settled, lost := c.settle(names, time.Now().Add(time.Minute), nil)
	for n, at := range settled {
		if _, ok := seen[n]; !ok {
			seen[n] = at
		}
	}
	led := c.ledger()

	// The API during and after the outage.
	var (
		outageRequests, outage503, slow, wrong, other5xx, transport int
		maxOutageLatency                                            time.Duration
		servedAfterRestart                                          bool
		lastFailureAfterRestart                                     time.Duration
		firstWrong                                                  string
	)
	for _, s := range sends {
		r := s.r
		end := r.start.Add(r.latency)
		switch {
		case r.err != nil:
			transport++
		case r.code >= 500 && r.code != http.StatusServiceUnavailable:
			other5xx++
		}
		if !r.start.Before(stoppedAt) && r.start.Before(restartedAt) {
			maxOutageLatency = max(maxOutageLatency, r.latency)
			if end.Before(restartedAt) {
				outageRequests++
				ok503 := r.err == nil && r.code == http.StatusServiceUnavailable && r.header.Get("Retry-After") != ""
				if ok503 {
					outage503++
				} else if wrong++; firstWrong == "" {
					firstWrong = r.String()
				}
				if r.latency > outageAnswer {
					slow++
				}
			}
		}
		if !r.start.Before(restartedAt) {
			if r.err == nil && r.code/100 == 2 {
				servedAfterRestart = true
			} else {
				lastFailureAfterRestart = max(lastFailureAfterRestart, end.Sub(restartedAt))
			}
		}
	}
	recovered := time.Duration(-1) // the last failed request after Redis's return
	if servedAfterRestart {
		recovered = lastFailureAfterRestart
	}
	readyDown, readyUp := time.Duration(-1), time.Duration(0)
	for _, p := range probes {
		if p.at.After(stoppedAt) && p.at.Before(restartedAt) && p.code != http.StatusOK && readyDown < 0 {
			readyDown = p.at.Sub(stoppedAt)
		}
		if p.at.After(restartedAt) && p.code != http.StatusOK {
			readyUp = max(readyUp, p.at.Sub(restartedAt))
		}
	}

	// Jobs running when Redis stopped: those whose handler ended during the
	// outage, and those still running when it came back.
	var finishedInOutage, spanning []string
	for n, j := range atStop {
		s, ok := spec[n]
		if !ok || j.state() != "RUNNING" {
			continue
		}
		end := j.time("startTime").Add(time.Duration(s.durationMillis) * time.Millisecond)
		switch {
		case end.Before(stoppedAt):
		case end.Before(restartedAt):
			finishedInOutage = append(finishedInOutage, n)
		default:
			spanning = append(spanning, n)
		}
	}
	recorded := time.Duration(-1)
	for _, n := range finishedInOutage {
		if at, ok := seen[n]; ok {
			recorded = max(recorded, at.Sub(restartedAt))
		}
	}
	// Workers are back when a handler starts again after Redis's return
	// (jobs wait in the queue by then: created before the stop, or since).
	workersBack := time.Duration(-1)
	for _, ex := range led {
		for _, e := range ex {
			if d := e.at.Sub(restartedAt); d >= 0 && (workersBack < 0 || d < workersBack) {
				workersBack = d
			}
		}
	}
	dup := twice(led, names)
	dupFinished := twice(led, finishedInOutage)
	dupSpanning := twice(led, spanning)
	rerun := count(final, names, func(j job) bool { return j.int("attempts") > 1 })
	gaps := ledgerGaps(led, final)

	report("redis-outage",
		"jobs", len(sends), "acknowledged", len(names), "lost", len(lost), "executed_twice", len(dup),
		"recovery_s", recovered, "worker_recovery_s", workersBack, "outage_requests", outageRequests, "outage_503", outage503,
		"max_outage_latency_s", maxOutageLatency, "slow_outage_requests", slow,
		"other_5xx", other5xx, "transport_errors", transport,
		"readyz_down_s", readyDown, "readyz_up_s", readyUp,
		"running_at_stop", len(finishedInOutage)+len(spanning), "finished_in_outage", len(finishedInOutage),
		"twice_finished_in_outage", len(dupFinished), "twice_running_through", len(dupSpanning),
		"recorded_after_restart_s", recorded, "attempts_over_1", rerun,
		"ledger_executions", executions(led), "ledger_gaps", len(gaps))

	require.Positive(t, outageRequests, "no request was made during the outage: the scenario measured nothing")
	require.NotEmpty(t, finishedInOutage, "no job finished during the outage: the scenario measured nothing")
	check(t, len(lost) == 0, "%d acknowledged jobs never reached a terminal state: %s", len(lost), sample(lost, 5))
	check(t, !exited(c.api), "the API exited during the outage: %s", exitStatus(c.api))
	for i, w := range c.workers {
		check(t, !exited(w), "worker %d exited during the outage: %s", i+1, exitStatus(w))
	}
	check(t, wrong == 0, "%d of %d requests during the outage were not 503 with Retry-After; first: %s", wrong, outageRequests, firstWrong)
	check(t, maxOutageLatency <= outageAnswer, "a request during the outage took %s; want at most %s (%d slower)", maxOutageLatency, outageAnswer, slow)
	check(t, other5xx == 0 && transport == 0, "%d answers were 5xx other than 503 and %d had no HTTP answer at all", other5xx, transport)
	check(t, recovered >= 0 && recovered <= apiRecovery, "the API served again %s after Redis returned; want within %s", recovered, apiRecovery)
	check(t, workersBack >= 0 && workersBack <= apiRecovery, "workers started a job %s after Redis returned; want within %s", workersBack, apiRecovery)
	check(t, readyDown >= 0 && readyDown <= outageAnswer, "/readyz turned unhealthy %s after Redis stopped; want within %s", readyDown, outageAnswer)
	check(t, readyUp <= apiRecovery, "/readyz was healthy again %s after Redis returned; want within %s", readyUp, apiRecovery)
	check(t, recorded >= 0 && recorded <= outcomeBound, "outcomes reached during the outage were recorded %s after Redis returned; want within %s", recorded, outcomeBound)
	check(t, len(dupFinished) == 0, "%d jobs that finished during the outage ran again: %s", len(dupFinished), sample(dupFinished, 5))
	check(t, len(dup) == 0, "%d jobs ran more than once although no worker died: %s", len(dup), sample(dup, 5))
	check(t, rerun == 0, "%d job records show more than one attempt although none failed, e.g. %s", rerun, firstRerun(final, names))
	check(t, len(gaps) == 0, "the ledger saw no execution of %d succeeded jobs (no \"job attempt started\" lines?), e.g. %s", len(gaps), sample(gaps, 3))
}

// firstRerun shows the first record with more than one attempt.
func firstRerun(final map[string]job, names []string) string {
	for _, n := range names {
		if j := final[n]; j != nil && j.int("attempts") > 1 {
			return j.String()
		}
	}
	return "-"
}
