package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"
)

// profile saves a CPU profile of p covering the next d (from its admin
// port's /debug/pprof/profile) when -pprof-dir is set, and one of this
// program (the client side: "loadgen-" before the name) over the same
// time. It returns at once; wait for the returned function before reading
// the files.
func (s *suite) profile(ctx context.Context, p *proc, name string, d time.Duration) (wait func()) {
	if s.pprofDir == "" || p == nil || p.admin == "" {
		return func() {}
	}
	if err := os.MkdirAll(s.pprofDir, 0o755); err != nil {
		s.logf("profile %s: %v", name, err)
		return func() {}
	}
	path := func(name string) string {
		return filepath.Join(s.pprofDir, strings.NewReplacer(" ", "-", "=", "", "/", "-").Replace(name)+".pprof")
	}
	done, self := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(self)
		f, err := os.Create(path("loadgen " + name))
		if err != nil {
			s.logf("profile loadgen %s: %v", name, err)
			return
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			s.logf("profile loadgen %s: %v", name, err)
			return
		}
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
		pprof.StopCPUProfile()
	}()
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
		f, err := os.Create(path(name))
		if err != nil {
			return
		}
		defer f.Close()
		if _, err := io.Copy(f, resp.Body); err != nil {
			s.logf("profile %s: %v", name, err)
		}
	}()
	return func() { <-done; <-self }
}
