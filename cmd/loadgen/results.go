package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// row is one line of the results table: a jobforge figure, the raw asynq
// figure measured next to it (if any), their ratio, and the target.
type row struct {
	Bench    string   `json:"bench"`
	What     string   `json:"what"`
	Value    float64  `json:"value"`
	Unit     string   `json:"unit"`
	Display  string   `json:"display"`
	Baseline float64  `json:"baseline,omitempty"`
	BaseDisp string   `json:"baseline_display,omitempty"`
	Ratio    float64  `json:"ratio,omitempty"`
	Target   string   `json:"target,omitempty"`
	Pass     *bool    `json:"pass,omitempty"`
	Extra    []string `json:"extra,omitempty"`
}

// latencySeries is one B4 scenario for the chart.
type latencySeries struct {
	Name string    `json:"name"`
	P    []float64 `json:"percentiles_ms"` // p50, p90, p99, max
}

// barGroup is one throughput comparison for the chart.
type barGroup struct {
	Label    string  `json:"label"`
	Jobforge float64 `json:"jobforge"`
	Raw      float64 `json:"raw"`
}

type results struct {
	Started    time.Time       `json:"started"`
	Command    string          `json:"command"`
	Machine    machine         `json:"machine"`
	Rows       []row           `json:"rows"`
	Latency    []latencySeries `json:"latency"`
	Throughput []barGroup      `json:"throughput"`
	Elapsed    string          `json:"elapsed"`

	// Figures later benchmarks build on.
	grpcCreate64 float64
	workerRate   float64
	apiRSS       memUse
	workerRSS    []memUse
	rawRSS       memUse
}

func newResults(args []string) *results {
	cmd := "loadgen"
	if len(args) > 0 {
		cmd += " " + strings.Join(args, " ")
	}
	if c := os.Getenv("BENCH_COMMAND"); c != "" {
		cmd = c
	}
	return &results{Started: time.Now(), Command: cmd, Machine: describeMachine()}
}

func (r *results) add(x row) {
	if x.Baseline > 0 && x.Ratio == 0 {
		x.Ratio = x.Value / x.Baseline
	}
	r.Rows = append(r.Rows, x)
}

func check(ok bool) *bool { return &ok }

type machine struct {
	CPU        string `json:"cpu"`
	Cores      int    `json:"cores"`
	MemoryGiB  int    `json:"memory_gib"`
	Kernel     string `json:"kernel"`
	Go         string `json:"go"`
	Redis      string `json:"redis"`
	LoadBefore string `json:"load_before"`
	LoadAfter  string `json:"load_after"`
}

func describeMachine() machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		_, _ = fmt.Sscanf(string(b), "MemTotal: %d kB", &kb)
		m.MemoryGiB = int((kb + 1<<19) >> 20)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	m.LoadBefore = loadAvg()
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func (r *results) machineLine() string {
	m := r.Machine
	return fmt.Sprintf("%s, %d cores, %d GiB RAM, %s, %s, Redis %s; load average %s before, %s after",
		m.CPU, m.Cores, m.MemoryGiB, m.Kernel, m.Go, m.Redis, m.LoadBefore, m.LoadAfter)
}

func (x row) ratioText() string {
	if x.Ratio == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f×", x.Ratio)
}

func (x row) passText(md bool) string {
	switch {
	case x.Pass == nil:
		return ""
	case *x.Pass && md:
		return "✅"
	case *x.Pass:
		return "ok"
	case md:
		return "❌ miss"
	default:
		return "MISS"
	}
}

// write prints the table to stdout and writes results.md, results.json and
// chart.png into dir.
func (r *results) write(dir string, stdout io.Writer) error {
	r.Machine.LoadAfter = loadAvg()
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\njobforge benchmarks: %s\n", r.Command)
	fmt.Fprintf(tw, "machine: %s\n\n", r.machineLine())
	fmt.Fprintln(tw, "bench\tmeasurement\tjobforge\traw asynq\tratio\ttarget\t")
	fmt.Fprintln(tw, "-----\t-----------\t--------\t---------\t-----\t------\t")
	for _, x := range r.Rows {
		target := x.Target
		if p := x.passText(false); p != "" {
			target += " " + p
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", x.Bench, x.What, x.Display, x.BaseDisp, x.ratioText(), target)
	}
	fmt.Fprintf(tw, "\ntotal time %s\n", r.Elapsed)
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(r.markdown()), 0o644); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	if len(r.Latency) > 0 || len(r.Throughput) > 0 {
		if err := r.chart(filepath.Join(dir, "chart.png")); err != nil {
			return fmt.Errorf("chart: %w", err)
		}
	}
	fmt.Fprintf(stdout, "wrote %s/results.md, results.json, chart.png\n", dir)
	return nil
}

func (r *results) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Command: `%s` (total %s)\n\n", r.Command, r.Elapsed)
	fmt.Fprintf(&b, "Machine: %s; run started %s.\n\n", r.machineLine(), r.Started.UTC().Format("2006-01-02 15:04 MST"))
	b.WriteString("| bench | measurement | jobforge | raw asynq | ratio | target |\n|---|---|---:|---:|---:|---|\n")
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	for _, x := range r.Rows {
		target := x.Target
		if p := x.passText(true); p != "" {
			target = strings.TrimSpace(target + " " + p)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", x.Bench, esc(x.What), esc(x.Display), esc(x.BaseDisp), x.ratioText(), esc(target))
	}
	var notes []string
	for _, x := range r.Rows {
		for _, e := range x.Extra {
			notes = append(notes, fmt.Sprintf("- %s %s: %s", x.Bench, x.What, e))
		}
	}
	if len(notes) > 0 {
		b.WriteString("\n" + strings.Join(slices.Compact(notes), "\n") + "\n")
	}
	return b.String()
}

func rate(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f/s", v)
	case v >= 10:
		return fmt.Sprintf("%.1f/s", v)
	default:
		return fmt.Sprintf("%.2f/s", v)
	}
}

func ms(d time.Duration) string {
	f := float64(d) / float64(time.Millisecond)
	switch {
	case f >= 100:
		return fmt.Sprintf("%.0f", f)
	case f >= 10:
		return fmt.Sprintf("%.1f", f)
	default:
		return fmt.Sprintf("%.2f", f)
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
