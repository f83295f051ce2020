package queue

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus metrics of jobs and worker slots. Label sets
// are bounded: type is a registered job type (or "unknown"), queue a
// configured queue, pool "io" or "cpu". A nil *Metrics records nothing.
//
// In a process that runs both the API and a worker (dev mode) one Metrics
// serves both, on the process's one registry.
type Metrics struct {
	created   *prometheus.CounterVec
	started   *prometheus.CounterVec
	succeeded *prometheus.CounterVec
	failed    *prometheus.CounterVec
	retried   *prometheus.CounterVec
	cancelled *prometheus.CounterVec
	recovered *prometheus.CounterVec

	notReplicated prometheus.Counter

	runDuration *prometheus.HistogramVec
	queueWait   *prometheus.HistogramVec

	slots     *prometheus.GaugeVec
	slotsBusy *prometheus.GaugeVec
}

// unknownType labels tasks whose type is not registered, so that a bad or
// foreign task cannot add label values.
const unknownType = "unknown"

// NewMetrics creates the job metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	byTypeQueue := []string{"type", "queue"}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "jobforge", Name: name, Help: help}, byTypeQueue)
	}
	m := &Metrics{
		created: counter("jobs_created_total", "Jobs created (accepted by the API and enqueued)."),
		recovered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "jobforge", Name: "jobs_recovered_total",
			Help: "Tasks of lost workers recovered by the recovery loop, by queue and outcome: lost (a running attempt was lost; the job runs again), requeued (taken but not started), abandoned (a live worker gave the attempt up), failed (WORKER_LOST), acked (finished but not acknowledged).",
		}, []string{"queue", "outcome"}),
		started:   counter("jobs_started_total", "Job attempts started by a worker."),
		succeeded: counter("jobs_succeeded_total", "Jobs that finished successfully."),
		failed:    counter("jobs_failed_total", "Jobs that failed for good: attempts exhausted or a permanent error."),
		retried:   counter("jobs_retried_total", "Job attempts that failed and were scheduled to run again."),
		cancelled: counter("jobs_cancelled_total", "Jobs cancelled through the API (pending, scheduled or running)."),
		notReplicated: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "jobforge", Name: "creates_not_replicated_total",
			Help: "Jobs whose create was answered 503 because fewer replicas than -redis-min-replicas confirmed it within -redis-replica-timeout.",
		}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "jobforge", Name: "job_run_duration_seconds",
			Help:    "Run time of job attempts that ended in success, retry or failure.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
		}, []string{"type"}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "jobforge", Name: "job_queue_wait_seconds",
			Help:    "Time from a job becoming due (created, or its schedule time) to its first attempt starting.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
		}, []string{"type"}),
		slots: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "jobforge", Name: "worker_slots",
			Help: "Concurrent job slots of this worker process, by pool.",
		}, []string{"pool"}),
		slotsBusy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "jobforge", Name: "worker_slots_busy",
			Help: "Job slots of this worker process that are running a job, by pool.",
		}, []string{"pool"}),
	}
	for _, c := range []prometheus.Collector{
		m.created, m.recovered, m.started, m.succeeded, m.failed, m.retried, m.cancelled,
		m.runDuration, m.queueWait, m.slots, m.slotsBusy, m.notReplicated,
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// JobCreated counts a created job.
func (m *Metrics) JobCreated(typ, queue string) {
	if m != nil {
		m.created.WithLabelValues(typ, queue).Inc()
	}
}

// NotReplicated counts jobs whose create was answered "retry" because
// fewer replicas than required confirmed it in time.
func (m *Metrics) NotReplicated(n int) {
	if m != nil {
		m.notReplicated.Add(float64(n))
	}
}

// JobCancelled counts a cancelled job.
func (m *Metrics) JobCancelled(typ, queue string) {
	if m != nil {
		m.cancelled.WithLabelValues(typ, queue).Inc()
	}
}

// JobRecovered counts a task recovered from a lost worker.
func (m *Metrics) JobRecovered(queue, outcome string) {
	if m != nil {
		m.recovered.WithLabelValues(queue, outcome).Inc()
	}
}
