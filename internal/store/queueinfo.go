package store

import "time"

// QueueInfo is what is in one queue right now.
type QueueInfo struct {
	Name      string
	Pending   int
	Active    int
	Scheduled int
	Retry     int
	Archived  int
	// Latency is the age of the oldest pending job.
	Latency time.Duration
	Paused  bool
	// MemoryBytes is the sampled memory used by the queue's keys.
	MemoryBytes int64
	// ProcessedToday and FailedToday count attempts finished since
	// midnight UTC (successes and failures, and failures only).
	ProcessedToday int
	FailedToday    int
}

// WorkerInfo is one live worker pool inside a worker process (a process
// runs one per pool).
type WorkerInfo struct {
	ID          string
	Host        string
	PID         int
	Queues      map[string]int // queue → weight
	Concurrency int
	Busy        int
	Started     time.Time
	Status      string
}
