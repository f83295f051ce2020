// Package builtin holds the job types jobforge ships with: primes
// (CPU-bound), report (long-running, with progress) and simulate (whose
// outcome the payload controls, for exercising retries and faults).
//
// They are ordinary job types, registered by cmd/worker exactly as a user's
// worker registers its own:
//
//	w, err := worker.New(cfg, builtin.Types()...)
package builtin

import "github.com/jobforge/jobforge/jobs"

// Types returns the built-in job types.
func Types() []*jobs.Type {
	return []*jobs.Type{Primes, Report, Simulate}
}
