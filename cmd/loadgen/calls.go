package main

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
)

const mebibyte = 1 << 20

// benchMemory is B7: peak RSS (VmHWM) of the api during B1 and of the
// worker during B5.
func (s *suite) benchMemory(context.Context) error {
	const limit = 64 * mebibyte
	if !s.want("B1") && !s.want("B5") {
		return fmt.Errorf("B7 reads the processes of B1 and B5: run it with them")
	}
	if s.res.apiRSS.peak > 0 {
		s.res.add(row{Bench: "B7", What: "api peak RSS during B1", Value: float64(s.res.apiRSS.peak) / mebibyte, Unit: "MiB",
			Display: mib(s.res.apiRSS.peak), Target: "≤ 64 MiB", Pass: check(s.res.apiRSS.peak <= limit),
			Extra: []string{fileShare(s.res.apiRSS)}})
	}
	for i, m := range s.res.workerRSS {
		x := row{Bench: "B7", What: "worker peak RSS during B5 (1 process)", Value: float64(m.peak) / mebibyte, Unit: "MiB",
			Display: mib(m.peak), Target: "≤ 64 MiB", Pass: check(m.peak <= limit), Extra: []string{fileShare(m)}}
		if i == 0 && s.res.rawRSS.peak > 0 {
			x.Baseline, x.BaseDisp = float64(s.res.rawRSS.peak)/mebibyte, mib(s.res.rawRSS.peak)
			x.Extra = append(x.Extra, "raw asynq server: "+fileShare(s.res.rawRSS))
		}
		s.res.add(x)
	}
	return nil
}

// fileShare says how much of a peak RSS was the executable's pages.
func fileShare(m memUse) string {
	return fmt.Sprintf("peak RSS %s, of which %s map the executable (RssFile at the end; how much of a binary the kernel maps depends on its page cache: see docs/benchmarks.md, B7)",
		mib(m.peak), mib(m.file))
}

// callWindow counts the Redis commands executed between its creation and
// end, less the INFO calls that read the counters.
type callWindow struct {
	s      *suite
	before map[string]cmdStat
	start  time.Time
}

func (s *suite) countCalls(ctx context.Context) (*callWindow, error) {
	st, err := commandStats(ctx, s.rdb)
	return &callWindow{s: s, before: st, start: time.Now()}, err
}

// end returns the per-command deltas and their total, leaving out INFO and
// the probes this program sent itself (probes = LLEN calls).
func (w *callWindow) end(ctx context.Context, probes int64) (map[string]cmdStat, int64, time.Duration, error) {
	after, err := commandStats(ctx, w.s.rdb)
	if err != nil {
		return nil, 0, 0, err
	}
	d := diffStats(after, w.before)
	delete(d, "info")
	if l := d["llen"]; probes > 0 {
		l.calls -= probes
		d["llen"] = l
		if l.calls == 0 {
			delete(d, "llen")
		}
	}
	var total int64
	for _, v := range d {
		total += v.calls
	}
	return d, total, time.Since(w.start), nil
}

// perJob lists calls (and Redis CPU µs) per job by command.
func perJob(d map[string]cmdStat, n int) string {
	keys := slices.Sorted(maps.Keys(d))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if c := float64(d[k].calls) / float64(n); c >= 0.005 {
			parts = append(parts, fmt.Sprintf("%s %.2f (%.1f µs)", k, c, float64(d[k].usec)/float64(n)))
		}
	}
	return strings.Join(parts, ", ")
}

// drainCounted starts procs (jobforge or raw) on the paused default queue
// holding n jobs, lets them settle, and counts the Redis commands of the
// drain, minus the idle rate measured right before it.
func (s *suite) drainCounted(ctx context.Context, raw bool, n int) (perJobCalls float64, idlePerSec, idleReqs float64, detail string, err error) {
	const q = "default"
	var ps []*proc
	if raw {
		ps, err = s.startRawWorkers(ctx, 1)
	} else {
		ps, err = s.startWorkers(ctx, 1)
	}
	defer stopAll(ps)
	if err != nil {
		return 0, 0, 0, "", err
	}
	time.Sleep(time.Second) // start-up work (heartbeat, recovery) is not per job
	w, err := s.countCalls(ctx)
	if err != nil {
		return 0, 0, 0, "", err
	}
	requests := s.monitor(ctx, s.idleCalls)
	idleDeltas, idle, idleFor, err := w.end(ctx, 0)
	if err != nil {
		return 0, 0, 0, "", err
	}
	idlePerSec = float64(idle) / idleFor.Seconds()
	s.idleRequests = float64(requests) / s.idleCalls.Seconds()
	s.logf("idle (raw=%v) over %s: %.0f requests/s; commands: %s", raw, idleFor.Round(time.Millisecond), s.idleRequests, perJob(idleDeltas, 1))

	if w, err = s.countCalls(ctx); err != nil {
		return 0, 0, 0, "", err
	}
	probes, err := s.drainProbed(ctx, q, n)
	if err != nil {
		return 0, 0, 0, "", err
	}
	deltas, total, window, err := w.end(ctx, probes)
	if err != nil {
		return 0, 0, 0, "", err
	}
	// Less the DEL that unpaused the queue and the idle polling.
	work := float64(total) - 1 - idlePerSec*window.Seconds()
	return work / float64(n), idlePerSec, s.idleRequests, perJob(deltas, n), nil
}

// monitor counts the requests clients send to Redis over d: the lines
// MONITOR prints, less those of commands run inside Lua scripts.
func (s *suite) monitor(ctx context.Context, d time.Duration) int64 {
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", s.addr)
	if err != nil {
		s.logf("monitor: %v", err)
		return -1
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		return -1
	}
	_ = conn.SetReadDeadline(time.Now().Add(d))
	r := bufio.NewReader(conn)
	var n int64
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return n // the deadline ends the count
		}
		// +1700000000.123456 [0 127.0.0.1:5555] "evalsha" ... or [0 lua]
		if strings.HasPrefix(line, "+") && strings.Contains(line, " [") && !strings.Contains(line, " lua] ") {
			n++
		}
	}
}

// drainProbed is drain that also reports how many LLEN probes it sent.
func (s *suite) drainProbed(ctx context.Context, q string, n int) (probes int64, err error) {
	pending, active := "asynq:{"+q+"}:pending", "asynq:{"+q+"}:active"
	start := time.Now()
	if err := s.inspector().UnpauseQueue(q); err != nil {
		return 0, err
	}
	for {
		time.Sleep(5 * time.Millisecond)
		pipe := s.rdb.Pipeline()
		p, a := pipe.LLen(ctx, pending), pipe.LLen(ctx, active)
		if _, err := pipe.Exec(ctx); err != nil {
			return probes, err
		}
		probes += 2
		if p.Val() == 0 && a.Val() == 0 {
			return probes, nil
		}
		if time.Since(start) > 5*time.Minute {
			return probes, fmt.Errorf("queue %s not drained after 5 minutes (%d of %d left)", q, p.Val()+a.Val(), n)
		}
	}
}

// benchRedisCalls is B8: Redis commands per job lifecycle, from INFO
// commandstats deltas, and the cost of an idle worker process. The same
// count runs as a regression test in internal/queue (redis_calls_test.go).
func (s *suite) benchRedisCalls(ctx context.Context) error {
	if err := s.ensureAPI(ctx); err != nil {
		return err
	}
	const n = 2000

	// Create: the api alone (no worker running).
	if err := s.flush(ctx); err != nil {
		return err
	}
	if err := s.inspector().PauseQueue("default"); err != nil {
		return err
	}
	w, err := s.countCalls(ctx)
	if err != nil {
		return err
	}
	for range n {
		if _, err := s.client.CreateJob(ctx, &jobforgev1.CreateJobRequest{Job: noopJob()}); err != nil {
			return err
		}
	}
	createDeltas, createTotal, _, err := w.end(ctx, 0)
	if err != nil {
		return err
	}
	s.logf("create: %s", perJob(createDeltas, n))
	// Run: the jobs created above, drained by one worker.
	jfRun, idle, idleReqs, detail, err := s.drainCounted(ctx, false, n)
	if err != nil {
		return err
	}

	if err := s.flush(ctx); err != nil {
		return err
	}
	if err := s.inspector().PauseQueue("default"); err != nil {
		return err
	}
	rawCreate, err := s.rawCreateCalls(ctx, n)
	if err != nil {
		return err
	}
	rawRun, rawIdle, rawIdleReqs, rawDetail, err := s.drainCounted(ctx, true, n)
	if err != nil {
		return err
	}
	s.res.add(row{Bench: "B8", What: "Redis commands per create (CreateJob)", Value: float64(createTotal) / n, Unit: "calls",
		Display: fmt.Sprintf("%.2f", float64(createTotal)/n), Baseline: rawCreate, BaseDisp: fmt.Sprintf("%.2f", rawCreate),
		Extra: []string{"per create: " + perJob(createDeltas, n)}})
	s.res.add(row{Bench: "B8", What: "Redis commands per job run (no-op job, 1 worker)", Value: jfRun, Unit: "calls",
		Display: fmt.Sprintf("≈ %.2f", jfRun), Baseline: rawRun, BaseDisp: fmt.Sprintf("≈ %.2f", rawRun),
		Extra: []string{"jobforge run, incl. idle polling during the drain: " + detail, "raw run: " + rawDetail,
			"idle polling measured right before is subtracted; the exact count is the regression test internal/queue TestRedisCallsPerJob"}})
	s.res.add(row{Bench: "B8", What: "idle worker process: requests to Redis per second", Value: idleReqs, Unit: "requests/s",
		Display: fmt.Sprintf("%.0f/s", idleReqs), Baseline: rawIdleReqs, BaseDisp: fmt.Sprintf("%.0f/s", rawIdleReqs),
		Target: "≤ 500/s", Pass: check(idleReqs <= 500),
		Extra: []string{fmt.Sprintf("requests counted with MONITOR over %s (the api idle too); the raw server polls one pool, the worker its io and cpu pools", s.idleCalls)}})
	s.res.add(row{Bench: "B8", What: "idle worker process: Redis commands per second (incl. inside scripts)", Value: idle, Unit: "calls/s",
		Display: fmt.Sprintf("%.0f/s", idle), Baseline: rawIdle, BaseDisp: fmt.Sprintf("%.0f/s", rawIdle),
		Target: "≤ 500/s", Pass: check(idle <= 500),
		Extra: []string{"INFO commandstats counts the commands a Lua script runs as well: each idle check of a queue is EVALSHA + EXISTS + RPOPLPUSH"}})
	s.logf("run: %s", detail)
	s.logf("raw run: %s", rawDetail)
	s.logf("calls per job: create %.2f (raw %.2f), run %.2f (raw %.2f); idle %.0f commands/s, %.0f requests/s (raw %.0f, %.0f)",
		float64(createTotal)/n, rawCreate, jfRun, rawRun, idle, idleReqs, rawIdle, rawIdleReqs)
	return nil
}

func (s *suite) rawCreateCalls(ctx context.Context, n int) (float64, error) {
	client, done := s.rawClient()
	defer done()
	w, err := s.countCalls(ctx)
	if err != nil {
		return 0, err
	}
	for range n {
		if _, err := client.EnqueueContext(ctx, newRawTask(), rawOpts(asynq.Retention(retention))...); err != nil {
			return 0, err
		}
	}
	_, total, _, err := w.end(ctx, 0)
	return float64(total) / float64(n), err
}

func selfExe() string {
	exe, err := os.Executable()
	if err != nil {
		return os.Args[0]
	}
	return exe
}
