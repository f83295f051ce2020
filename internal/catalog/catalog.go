// Package catalog is the job-type catalogue as the API sees it: what the
// workers that run each type have published (name, description, defaults,
// payload JSON Schema, example), which live workers serve it, and the
// compiled schema the API validates payloads with.
//
// Workers publish; the API only reads. That is what lets the stock API
// accept a job type it has no code for: a team writes the type in its own
// module, deploys its worker, and the type's first publication makes it
// valid for CreateJob.
//
// A type can have more than one published definition (digest) at a time:
// during a rolling deploy that changes a payload, or when two teams use one
// name by mistake. The API then validates with the newest definition that a
// live worker serves (first publication time, then digest, decide) and
// reports the others as conflicts; it never merges them.
package catalog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"sort"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/jobforge/jobforge/jobs"
)

// Entry is one definition of a job type, as a worker publishes it.
type Entry struct {
	Name            string          `json:"name"`
	Description     string          `json:"description,omitempty"`
	Queue           string          `json:"queue"`
	TimeoutMillis   int64           `json:"timeout_ms"`
	MaxAttempts     int             `json:"max_attempts"`
	MaxPayloadBytes int             `json:"max_payload_bytes"`
	Schema          json.RawMessage `json:"payload_schema"`
	Example         json.RawMessage `json:"example_payload,omitempty"`
	// FirstPublished is when a worker first published this definition
	// (Unix milliseconds); it orders definitions of one type.
	FirstPublished int64 `json:"first_published_ms,omitempty"`
}

// EntryOf returns the catalogue entry of a job type.
func EntryOf(t *jobs.Type) Entry {
	return Entry{
		Name:            t.Name(),
		Description:     t.Description(),
		Queue:           t.Queue(),
		TimeoutMillis:   t.Timeout().Milliseconds(),
		MaxAttempts:     t.MaxAttempts(),
		MaxPayloadBytes: t.MaxPayloadBytes(),
		Schema:          t.Schema(),
		Example:         t.Example(),
	}
}

// Digest identifies a definition by its content (FirstPublished aside):
// two workers publishing the same type the same way publish one digest.
func (e Entry) Digest() string {
	e.FirstPublished = 0
	b, _ := json.Marshal(e) // only strings, numbers and valid JSON
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// Timeout is the type's default per-attempt deadline.
func (e Entry) Timeout() time.Duration { return time.Duration(e.TimeoutMillis) * time.Millisecond }

// Published is what the store holds: every definition, and which definition
// of each type every live worker serves.
type Published struct {
	// Definitions by digest.
	Definitions map[string]Entry
	// Workers maps each live worker id to the digests of the types it
	// serves, by type name.
	Workers map[string]map[string]string
}

// Type is a job type in the catalogue: its current definition, compiled.
type Type struct {
	Entry
	Digest string
	// Workers are the live workers serving this type (any definition),
	// sorted. Empty means jobs of this type wait until one starts.
	Workers []string
	// Conflicts are the other definitions live workers serve for this
	// name, newest first.
	Conflicts []Entry

	schema    *jsonschema.Schema
	schemaErr error // the published schema does not compile
}

// Catalog is one consistent view of every published type.
type Catalog struct {
	byName map[string]*Type
	sorted []*Type
}

// Lookup returns the type with the given name.
func (c *Catalog) Lookup(name string) (*Type, bool) {
	t, ok := c.byName[name]
	return t, ok
}

// Types returns every type, sorted by name.
func (c *Catalog) Types() []*Type { return slices.Clone(c.sorted) }

// HasQueue reports whether some type runs on queue q.
func (c *Catalog) HasQueue(q string) bool {
	return slices.ContainsFunc(c.sorted, func(t *Type) bool { return t.Queue == q })
}

// Names returns every type name, sorted.
func (c *Catalog) Names() []string {
	names := make([]string, len(c.sorted))
	for i, t := range c.sorted {
		names[i] = t.Name
	}
	return names
}

// Static returns a catalogue of the given types, as if one live worker
// named worker served them all.
func Static(worker string, types ...*jobs.Type) (*Catalog, error) {
	p := Published{Definitions: map[string]Entry{}, Workers: map[string]map[string]string{worker: {}}}
	for _, t := range types {
		e := EntryOf(t)
		d := e.Digest()
		p.Definitions[d] = e
		p.Workers[worker][e.Name] = d
	}
	return Build(p, NewCompiler())
}

// Build assembles a catalogue from what workers published, compiling each
// current schema with comp (which caches by digest). A schema that does not
// compile makes its type refuse every payload (see Type.Validate), not the
// catalogue fail: one bad publication must not stop every other type.
func Build(p Published, comp *Compiler) (*Catalog, error) {
	byName := map[string][]string{} // name → digests
	for d, e := range p.Definitions {
		byName[e.Name] = append(byName[e.Name], d)
	}
	served := map[string]map[string]bool{} // digest → live workers
	workersOf := map[string][]string{}     // name → live workers
	for w, types := range p.Workers {
		for name, d := range types {
			if served[d] == nil {
				served[d] = map[string]bool{}
			}
			served[d][w] = true
			workersOf[name] = append(workersOf[name], w)
		}
	}
	c := &Catalog{byName: make(map[string]*Type, len(byName))}
	for name, digests := range byName {
		newestFirst := func(a, b string) int {
			ea, eb := p.Definitions[a], p.Definitions[b]
			if ea.FirstPublished != eb.FirstPublished {
				return int(eb.FirstPublished - ea.FirstPublished)
			}
			return bytes.Compare([]byte(a), []byte(b))
		}
		slices.SortFunc(digests, newestFirst)
		live := slices.DeleteFunc(slices.Clone(digests), func(d string) bool { return len(served[d]) == 0 })
		current := digests[0]
		if len(live) > 0 {
			current = live[0]
		}
		t := &Type{Entry: p.Definitions[current], Digest: current}
		t.schema, t.schemaErr = comp.Compile(current, p.Definitions[current].Schema)
		t.Workers = slices.Compact(slices.Sorted(slices.Values(workersOf[name])))
		for _, d := range live {
			if d != current {
				t.Conflicts = append(t.Conflicts, p.Definitions[d])
			}
		}
		c.byName[name] = t
		c.sorted = append(c.sorted, t)
	}
	sort.Slice(c.sorted, func(i, j int) bool { return c.sorted[i].Name < c.sorted[j].Name })
	return c, nil
}

// Fixed serves one catalogue that never changes, for tests and tools; the
// API reads a Cache.
type Fixed struct{ Catalog *Catalog }

// Get returns the catalogue.
func (f Fixed) Get(context.Context) (*Catalog, error) { return f.Catalog, nil }

// Refresh returns the catalogue.
func (f Fixed) Refresh(context.Context) (*Catalog, error) { return f.Catalog, nil }

// Lookup returns the named type, nil when unknown.
func (f Fixed) Lookup(_ context.Context, name string) (*Type, *Catalog, error) {
	t, _ := f.Catalog.Lookup(name)
	return t, f.Catalog, nil
}
