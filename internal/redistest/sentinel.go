package redistest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// SentinelOptions configures NewSentinel.
type SentinelOptions struct {
	// MasterName is the name the sentinel monitors the master under.
	MasterName string
	// MasterPassword is the master's requirepass (sentinel auth-pass).
	MasterPassword string
	// Password is the sentinel's own requirepass; empty for none.
	Password string
}

// NewSentinel starts a Redis Sentinel (redis-server --sentinel) on a free
// loopback port that monitors master, with a quorum of one; it is stopped
// when the test ends. Its Addr is what clients list as a sentinel.
func NewSentinel(tb testing.TB, master *Server, opts SentinelOptions) *Server {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs redis-server; skipped in -short mode")
	}
	dir := tb.TempDir()
	conf := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 1\nsentinel down-after-milliseconds %[1]s 1000\nsentinel failover-timeout %[1]s 5000\n",
		opts.MasterName, master.port)
	if opts.MasterPassword != "" {
		conf += fmt.Sprintf("sentinel auth-pass %s %s\n", opts.MasterName, opts.MasterPassword)
	}
	if opts.Password != "" {
		conf += fmt.Sprintf("requirepass %s\n", opts.Password)
	}
	path := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	s, err := start(dir, func(s *Server) { s.sentinel = path })
	if err != nil {
		tb.Fatalf("redistest: sentinel: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}
