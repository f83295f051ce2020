package catalog

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Source reads what workers have published.
type Source func(ctx context.Context) (Published, error)

// CacheOptions configure a Cache.
type CacheOptions struct {
	// Refresh is how often Run re-reads the catalogue (default 1 s).
	Refresh time.Duration
	// MissRefresh is the least time between two reads forced by a lookup
	// of an unknown name, so a newly deployed worker's type is accepted at
	// once but a flood of unknown names does not become a flood of reads
	// (default 100 ms).
	MissRefresh time.Duration
	Logger      *slog.Logger
	// Registerer, when set, gets the jobforge_job_type_definitions gauge.
	Registerer prometheus.Registerer
}

// Cache keeps the current catalogue in memory for the API, so validating a
// payload costs no Redis round trip: Run refreshes it in the background and
// a lookup of an unknown name refreshes it at once (rate limited).
type Cache struct {
	src  Source
	comp *Compiler
	opts CacheOptions
	defs *prometheus.GaugeVec

	mu      sync.Mutex // serialises loads
	cur     *Catalog
	loaded  time.Time
	lastErr error
}

// NewCache returns a cache reading from src.
func NewCache(src Source, opts CacheOptions) *Cache {
	if opts.Refresh <= 0 {
		opts.Refresh = time.Second
	}
	if opts.MissRefresh <= 0 {
		opts.MissRefresh = 100 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cache{src: src, comp: NewCompiler(), opts: opts}
	c.defs = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "jobforge_job_type_definitions",
		Help: "Definitions of each job type that live workers serve; more than 1 means workers disagree on its payload schema or defaults.",
	}, []string{"type"})
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(c.defs)
	}
	return c
}

// Run refreshes the catalogue every Refresh until ctx is done.
func (c *Cache) Run(ctx context.Context) {
	t := time.NewTicker(c.opts.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = c.load(ctx, 0)
		}
	}
}

// Get returns the current catalogue, reading it first if it never was.
func (c *Cache) Get(ctx context.Context) (*Catalog, error) {
	c.mu.Lock()
	cur := c.cur
	c.mu.Unlock()
	if cur != nil {
		return cur, nil
	}
	return c.load(ctx, 0)
}

// Refresh reads the catalogue now and returns it (for ListJobTypes, which
// must show a worker that started a moment ago); a failed read returns the
// last catalogue, as load does.
func (c *Cache) Refresh(ctx context.Context) (*Catalog, error) { return c.load(ctx, 0) }

// Lookup returns the type named name. An unknown name re-reads the
// catalogue first unless it was read within MissRefresh. The catalogue is
// returned too, to name the known types in an error.
func (c *Cache) Lookup(ctx context.Context, name string) (*Type, *Catalog, error) {
	cat, err := c.Get(ctx)
	if err != nil {
		return nil, nil, err
	}
	if t, ok := cat.Lookup(name); ok {
		return t, cat, nil
	}
	if cat, err = c.load(ctx, c.opts.MissRefresh); err != nil {
		return nil, nil, err
	}
	t, _ := cat.Lookup(name)
	return t, cat, nil
}

// load reads the catalogue unless it was read within minAge. A failed read
// keeps serving the last catalogue (job types change rarely; Redis being
// down fails the create that follows anyway) and fails only when there is
// none.
func (c *Cache) load(ctx context.Context, minAge time.Duration) (*Catalog, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil && time.Since(c.loaded) < minAge {
		return c.cur, nil
	}
	p, err := c.src(ctx)
	if err == nil {
		var cat *Catalog
		cat, err = Build(p, c.comp)
		if err == nil {
			c.report(cat)
			c.cur, c.loaded, c.lastErr = cat, time.Now(), nil
			return cat, nil
		}
	}
	if c.lastErr == nil {
		c.opts.Logger.WarnContext(ctx, "read job type catalogue", "error", err)
	}
	c.lastErr = err
	if c.cur != nil {
		return c.cur, nil
	}
	return nil, err
}

// report logs each type whose live workers newly disagree on its
// definition, and sets the definitions gauge.
func (c *Cache) report(next *Catalog) {
	for _, t := range next.sorted {
		c.defs.WithLabelValues(t.Name).Set(float64(min(len(t.Workers), 1) + len(t.Conflicts)))
		if len(t.Conflicts) == 0 {
			continue
		}
		if c.cur != nil {
			if old, ok := c.cur.Lookup(t.Name); ok && sameConflicts(old, t) {
				continue
			}
		}
		digests := make([]string, len(t.Conflicts))
		for i, e := range t.Conflicts {
			digests[i] = e.Digest()
		}
		c.opts.Logger.Warn("live workers publish different definitions of one job type; validating with the newest",
			"type", t.Name, "current", t.Digest, "others", digests, "workers", t.Workers)
	}
}

func sameConflicts(a, b *Type) bool {
	return a.Digest == b.Digest && slices.EqualFunc(a.Conflicts, b.Conflicts, func(x, y Entry) bool { return x.Digest() == y.Digest() })
}
