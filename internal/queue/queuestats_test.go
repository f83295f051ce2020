package queue_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/queue"
	"github.com/jobforge/jobforge/internal/redistest"
	"github.com/jobforge/jobforge/internal/store"
)

// exporter runs a QueueStats on its own registry, as one API replica would.
type exporter struct {
	stats  *queue.QueueStats
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   sync.WaitGroup
}

func startExporter(t *testing.T, b *bundle) *exporter {
	t.Helper()
	e := &exporter{reg: prometheus.NewRegistry()}
	e.stats = queue.NewQueueStats(b.rdb, queue.QueueStatsOptions{
		Queues: []string{"default", "cpu"}, Interval: 20 * time.Millisecond, Logger: testLogger(t),
	})
	e.reg.MustRegister(e.stats)
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.done.Add(1)
	go func() { defer e.done.Done(); e.stats.Run(ctx) }()
	t.Cleanup(e.stop)
	return e
}

func (e *exporter) stop() { e.cancel(); e.done.Wait() }

func (e *exporter) exporting(t *testing.T) bool {
	t.Helper()
	n, err := testutil.GatherAndCount(e.reg, "jobforge_queue_jobs")
	require.NoError(t, err)
	return n > 0
}

func TestQueueStatsOneExporterPerCluster(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a, c := startExporter(t, b), startExporter(t, b)
	_, _, err := b.store.Create(context.Background(), store.NewJob{
		Tenant: "default", Type: "simulate", Queue: "default", Payload: []byte(`{}`), MaxAttempts: 1,
		Timeout: time.Minute, ScheduleTime: time.Now().Add(time.Hour),
	})
	require.NoError(t, err)

	redistest.Eventually(t, 5*time.Second, func() bool {
		return a.exporting(t) != c.exporting(t)
	}, "not exactly one exporter")
	leader, other := a, c
	if c.exporting(t) {
		leader, other = c, a
	}
	require.Equal(t, 1.0, sample(t, leader.reg, "jobforge_queue_stats_exporter", nil))
	require.Equal(t, 0.0, sample(t, other.reg, "jobforge_queue_stats_exporter", nil))
	redistest.Eventually(t, 5*time.Second, func() bool {
		return sample(t, leader.reg, "jobforge_queue_jobs", map[string]string{"queue": "default", "state": "scheduled"}) == 1
	}, "scheduled job not counted")
	require.Equal(t, 0.0, sample(t, leader.reg, "jobforge_queue_jobs", map[string]string{"queue": "cpu", "state": "pending"}),
		"a queue that never had a job reports zeros")

	// The leader goes away: it gives up the lease and the other replica
	// takes over at its next tick.
	leader.stop()
	require.False(t, leader.exporting(t))
	redistest.Eventually(t, 5*time.Second, func() bool { return other.exporting(t) }, "no takeover")
}

// sample returns the value of the gauge name with exactly labels, or -1.
func sample(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}
