package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// profile saves a CPU profile of p covering the next d (from its admin
// port's /debug/pprof/profile) when -pprof-dir is set. It returns at once;
// wait for the returned function before reading the file.
func (s *suite) profile(ctx context.Context, p *proc, name string, d time.Duration) (wait func()) {
	if s.pprofDir == "" || p == nil || p.admin == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		secs := max(int(d.Round(time.Second)/time.Second), 1)
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.admin, secs)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			s.logf("profile %s: %v", name, err)
			return
		}
		defer resp.Body.Close()
		if err := os.MkdirAll(s.pprofDir, 0o755); err != nil {
			return
		}
		path := filepath.Join(s.pprofDir, strings.NewReplacer(" ", "-", "=", "", "/", "-").Replace(name)+".pprof")
		f, err := os.Create(path)
		if err != nil {
			return
		}
		defer f.Close()
		if _, err := io.Copy(f, resp.Body); err != nil {
			s.logf("profile %s: %v", name, err)
		}
	}()
	return func() { <-done }
}
