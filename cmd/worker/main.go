// Command worker executes jobforge's built-in job types (primes, report,
// simulate). It is package worker with those types registered, exactly as a
// worker of your own job types is: see examples/wordcount. Run as many as
// the load needs; -pools selects the I/O and/or CPU pool.
package main

import (
	"github.com/jobforge/jobforge/jobs/builtin"
	"github.com/jobforge/jobforge/worker"
)

func main() { worker.Main(builtin.Types()...) }
