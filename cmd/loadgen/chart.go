package main

import (
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// chart draws the B4 latency percentiles and the throughput comparisons
// (jobforge next to raw asynq) into one PNG.
func (r *results) chart(path string) error {
	var plots [][]*plot.Plot
	if len(r.Latency) > 0 {
		p, err := groupedBars("B4 submit latency (no-op jobs)", "milliseconds",
			[]string{"p50", "p90", "p99", "max"}, latencyBars(r.Latency))
		if err != nil {
			return err
		}
		plots = append(plots, []*plot.Plot{p})
	}
	if len(r.Throughput) > 0 {
		labels := make([]string, len(r.Throughput))
		jf := make(plotter.Values, len(r.Throughput))
		raw := make(plotter.Values, len(r.Throughput))
		for i, g := range r.Throughput {
			labels[i], jf[i], raw[i] = g.Label, g.Jobforge, g.Raw
		}
		p, err := groupedBars("Throughput: jobforge vs raw asynq, same run", "jobs per second", labels,
			[]series{{"jobforge", jf}, {"raw asynq", raw}})
		if err != nil {
			return err
		}
		plots = append(plots, []*plot.Plot{p})
	}
	const width, rowHeight = 30 * vg.Centimeter, 11 * vg.Centimeter
	img := vgimg.New(width, rowHeight*vg.Length(len(plots)))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadTop: vg.Millimeter * 3, PadBottom: vg.Millimeter * 3,
		PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3, PadY: vg.Millimeter * 6}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type series struct {
	name   string
	values plotter.Values
}

func latencyBars(ls []latencySeries) []series {
	out := make([]series, len(ls))
	for i, l := range ls {
		out[i] = series{l.Name, plotter.Values(l.P)}
	}
	return out
}

func groupedBars(title, ylabel string, labels []string, ss []series) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.Y.Min = 0
	top := 0.0
	for _, s := range ss {
		for _, v := range s.values {
			top = max(top, v)
		}
	}
	p.Y.Max = top * 1.25 // room for the legend
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	groupWidth := vg.Points(float64(560) / float64(max(len(labels), 1)))
	w := min(groupWidth*0.8/vg.Length(len(ss)), vg.Points(22))
	for i, s := range ss {
		b, err := plotter.NewBarChart(s.values, w)
		if err != nil {
			return nil, err
		}
		b.LineStyle.Width = vg.Length(0)
		b.Color = plotutil.Color(i)
		b.Offset = w * (vg.Length(i) - vg.Length(len(ss)-1)/2)
		p.Add(b)
		p.Legend.Add(s.name, b)
	}
	p.NominalX(labels...)
	return p, nil
}
