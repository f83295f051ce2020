package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jobforge/jobforge/internal/freeport"
	"github.com/redis/go-redis/v9"
)

// proc is a child process (redis-server, api, worker, raw-worker, remote
// workers) whose
// output goes to a log file in the run directory.
type proc struct {
	name   string
	admin  string // host:port of /debug/pprof/ (api and worker)
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
	err    error
}

func startProc(dir, name, bin string, args ...string) (*proc, error) {
	return startProcEnv(dir, name, nil, bin, args...)
}

// startProcEnv is startProc with env added to this program's environment.
func startProcEnv(dir, name string, env []string, bin string, args ...string) (*proc, error) {
	f, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, cmd: exec.Command(bin, args...), log: f, exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.Env = append(os.Environ(), env...)
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.err = p.cmd.Wait(); f.Close(); close(p.exited) }()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// waitReady polls check until it succeeds, the process exits, or 30s pass.
func (p *proc) waitReady(ctx context.Context, check func(context.Context) error) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		err := check(cctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before it was ready (%v); see %s", p.name, p.err, p.log.Name())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within 30s: %v; see %s", p.name, err, p.log.Name())
		}
	}
}

// stop asks the process to exit (SIGTERM) and kills it after timeout.
func (p *proc) stop(timeout time.Duration) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// memUse is what /proc says of a process's memory.
type memUse struct {
	peak int64 // peak resident set size (VmHWM), bytes
	// file is the part of the resident set, now, that maps files — the
	// executable's pages. It depends on how the kernel holds the binary in
	// its page cache as much as on the program: a binary the linker has
	// just written maps its pages in larger runs (~10 MiB more for the api
	// than a copy of the same file).
	file int64
}

// memory reads the process's memUse.
func (p *proc) memory() (memUse, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		return memUse{}, err
	}
	var m memUse
	var found int
	for line := range strings.SplitSeq(string(b), "\n") {
		name, v, _ := strings.Cut(line, ":")
		var to *int64
		switch name {
		case "VmHWM":
			to = &m.peak
		case "RssFile":
			to = &m.file
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return memUse{}, fmt.Errorf("/proc status %s: %w", name, err)
		}
		*to, found = kb<<10, found+1
	}
	if found != 2 {
		return memUse{}, errors.New("no VmHWM or RssFile in /proc status")
	}
	return m, nil
}

// cpuTime is the user+system CPU time the process has used so far.
func (p *proc) cpuTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid()))
	if err != nil {
		return 0, err
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields of the whole line, in clock ticks (100 Hz).
	s := string(b)
	rest := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(rest) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseInt(rest[11], 10, 64)
	st, _ := strconv.ParseInt(rest[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

func freeAddr() (string, error) {
	p, err := freeport.Loopback()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
}

// startRedis runs a private redis-server on a free loopback port with
// persistence off: the benchmarks never touch a Redis they did not start.
func startRedis(ctx context.Context, dir, bin string) (*proc, string, error) {
	port, err := freeport.Loopback()
	if err != nil {
		return nil, "", err
	}
	p, err := startProc(dir, "redis", bin,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--protected-mode", "no", "--loglevel", "warning")
	if err != nil {
		return nil, "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	if err := p.waitReady(ctx, func(ctx context.Context) error { return rdb.Ping(ctx).Err() }); err != nil {
		p.stop(time.Second)
		return nil, "", err
	}
	return p, addr, nil
}

// httpReady checks that GET url answers 200.
func httpReady(url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	}
}

// cmdStat is one command's counters from INFO commandstats.
type cmdStat struct {
	calls int64
	usec  int64 // server CPU time spent in the command
}

// commandStats returns Redis's per-command counters (INFO commandstats),
// keyed by command name.
func commandStats(ctx context.Context, rdb redis.UniversalClient) (map[string]cmdStat, error) {
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := map[string]cmdStat{}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		name, rest, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		var st cmdStat
		for kv := range strings.SplitSeq(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "calls":
				st.calls = n
			case "usec":
				st.usec = n
			}
		}
		out[strings.TrimPrefix(name, "cmdstat_")] = st
	}
	return out, sc.Err()
}

func diffStats(after, before map[string]cmdStat) map[string]cmdStat {
	out := map[string]cmdStat{}
	for k, v := range after {
		if d := (cmdStat{v.calls - before[k].calls, v.usec - before[k].usec}); d.calls != 0 {
			out[k] = d
		}
	}
	return out
}
