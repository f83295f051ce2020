package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// QueueStats exports the state of the queues (depth per state, age of the
// oldest pending job, paused) as Prometheus metrics, once for the whole
// cluster: every API replica runs one, but only the replica that holds a
// short Redis lease reads the queues and exports them. The others export
// nothing but jobforge_queue_stats_exporter 0, so sums and alerts need no
// de-duplication. When the holder goes away its lease expires and another
// replica takes over within LeaseTTL.
type QueueStats struct {
	rdb       redis.UniversalClient
	inspector *asynq.Inspector
	opts      QueueStatsOptions
	id        string

	mu       sync.Mutex
	leader   bool
	snapshot []queueSnapshot

	exporterDesc, jobsDesc, ageDesc, pausedDesc *prometheus.Desc
}

// QueueStatsOptions configures QueueStats.
type QueueStatsOptions struct {
	// Queues are the queues to report: the configured ones, which keeps the
	// queue label bounded.
	Queues []string
	// Interval is how often the lease is renewed and the queues are read.
	// Default 5s.
	Interval time.Duration
	// LeaseTTL is how long the lease outlives its holder. Default 3×Interval.
	LeaseTTL time.Duration
	Logger   *slog.Logger
}

type queueSnapshot struct {
	queue      string
	states     map[string]int
	oldestWait time.Duration
	paused     bool
}

// queueStates are asynq's task states, the values of the state label.
var queueStates = []string{"pending", "active", "scheduled", "retry", "archived", "completed", "aggregating"}

const queueStatsLeaseKey = keyPrefix + "lease:queue-stats"

var (
	// ARGV holder, ttl_ms. Returns 1 when ARGV[1] holds the lease now.
	acquireLeaseScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0`)
	// ARGV holder. Deletes the lease if ARGV[1] holds it.
	releaseLeaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)
)

// NewQueueStats returns the cluster queue metrics collector; register it on
// the process's registry and run Run.
func NewQueueStats(rdb redis.UniversalClient, opts QueueStatsOptions) *QueueStats {
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = 3 * opts.Interval
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	return &QueueStats{
		rdb:       rdb,
		inspector: asynq.NewInspectorFromRedisClient(rdb),
		opts:      opts,
		id:        hex.EncodeToString(b[:]),
		exporterDesc: prometheus.NewDesc("jobforge_queue_stats_exporter",
			"1 on the one replica that currently exports the jobforge_queue_* metrics for the cluster, else 0.", nil, nil),
		jobsDesc: prometheus.NewDesc("jobforge_queue_jobs",
			"Jobs in each queue by asynq task state (pending, active, scheduled, retry, archived, completed, aggregating).",
			[]string{"queue", "state"}, nil),
		ageDesc: prometheus.NewDesc("jobforge_queue_oldest_pending_age_seconds",
			"Age of the oldest pending job of each queue (0 when none is pending).", []string{"queue"}, nil),
		pausedDesc: prometheus.NewDesc("jobforge_queue_paused",
			"1 when the queue is paused.", []string{"queue"}, nil),
	}
}

// Run holds or competes for the lease and refreshes the snapshot every
// Interval until ctx is done, then gives the lease up so that another
// replica takes over at once.
func (s *QueueStats) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		s.tick(ctx)
		select {
		case <-ctx.Done():
			s.release()
			return
		case <-t.C:
		}
	}
}

func (s *QueueStats) tick(ctx context.Context) {
	tctx, cancel := context.WithTimeout(ctx, s.opts.Interval)
	defer cancel()
	held, err := acquireLeaseScript.Run(tctx, s.rdb, []string{queueStatsLeaseKey}, s.id, s.opts.LeaseTTL.Milliseconds()).Int()
	if err != nil {
		if ctx.Err() == nil {
			s.opts.Logger.DebugContext(ctx, "queue stats lease", "error", err)
		}
		s.set(false, nil)
		return
	}
	if held == 0 {
		s.set(false, nil)
		return
	}
	snap, err := s.read()
	if err != nil {
		s.opts.Logger.WarnContext(ctx, "read queue stats", "error", err)
		s.set(true, nil) // export nothing rather than stale numbers
		return
	}
	s.set(true, snap)
}

func (s *QueueStats) set(leader bool, snap []queueSnapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if leader != s.leader {
		s.opts.Logger.Info("queue stats exporter changed", "exporting", leader)
	}
	s.leader, s.snapshot = leader, snap
}

func (s *QueueStats) release() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = releaseLeaseScript.Run(ctx, s.rdb, []string{queueStatsLeaseKey}, s.id).Err()
	s.set(false, nil)
}

func (s *QueueStats) read() ([]queueSnapshot, error) {
	known, err := s.inspector.Queues()
	if err != nil {
		return nil, err
	}
	out := make([]queueSnapshot, 0, len(s.opts.Queues))
	for _, q := range s.opts.Queues {
		snap := queueSnapshot{queue: q, states: map[string]int{}}
		if slices.Contains(known, q) { // else no job was ever enqueued on it: all zero
			info, err := s.inspector.GetQueueInfo(q)
			if err != nil {
				return nil, err
			}
			snap.states = map[string]int{
				"pending": info.Pending, "active": info.Active, "scheduled": info.Scheduled, "retry": info.Retry,
				"archived": info.Archived, "completed": info.Completed, "aggregating": info.Aggregating,
			}
			snap.oldestWait = info.Latency
			snap.paused = info.Paused
		}
		out = append(out, snap)
	}
	return out, nil
}

// Describe implements prometheus.Collector.
func (s *QueueStats) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.exporterDesc
	ch <- s.jobsDesc
	ch <- s.ageDesc
	ch <- s.pausedDesc
}

// Collect implements prometheus.Collector. It never touches Redis: it
// reports the snapshot of the last refresh.
func (s *QueueStats) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	leader, snap := s.leader, s.snapshot
	s.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(s.exporterDesc, prometheus.GaugeValue, boolFloat(leader))
	if !leader {
		return
	}
	for _, q := range snap {
		for _, st := range queueStates {
			ch <- prometheus.MustNewConstMetric(s.jobsDesc, prometheus.GaugeValue, float64(q.states[st]), q.queue, st)
		}
		ch <- prometheus.MustNewConstMetric(s.ageDesc, prometheus.GaugeValue, q.oldestWait.Seconds(), q.queue)
		ch <- prometheus.MustNewConstMetric(s.pausedDesc, prometheus.GaugeValue, boolFloat(q.paused), q.queue)
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
