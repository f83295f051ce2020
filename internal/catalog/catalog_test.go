package catalog_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/catalog"
	"github.com/jobforge/jobforge/jobs"
)

type resizePayload struct {
	URL    string   `json:"url" jsonschema:"required,maxLength=20"`
	Width  int      `json:"width,omitempty" jsonschema:"minimum=1,maximum=4096"`
	Format string   `json:"format,omitempty" jsonschema:"enum=png,enum=jpeg"`
	Tags   []string `json:"tags,omitempty" jsonschema:"maxItems=2"`
	Note   string   `json:"note,omitempty" jsonschema:"minLength=1"`
	Code   string   `json:"code,omitempty" jsonschema:"minLength=3"`
	Crop   []int    `json:"crop,omitempty" jsonschema:"minItems=1,maxItems=1"`
}

var resize = jobs.Define(jobs.Spec[resizePayload, string]{
	Name: "resize", Example: resizePayload{URL: "https://x/a.png"},
	Handle: func(context.Context, *jobs.Job, resizePayload) (string, error) { return "", nil },
})

func TestValidateNamesEachField(t *testing.T) {
	t.Parallel()
	cat, err := catalog.Static("w1", resize)
	require.NoError(t, err)
	typ, ok := cat.Lookup("resize")
	require.True(t, ok)
	tests := []struct {
		name    string
		payload string
		want    []jobs.FieldViolation // nil: valid
	}{
		{"example", `{"url":"https://x/a.png"}`, nil},
		{"all fields", `{"url":"u","width":4096,"format":"jpeg","tags":["a","b"]}`, nil},
		{"missing required", `{}`, []jobs.FieldViolation{{Field: "url", Description: "required"}}},
		{"empty payload is an object", ``, []jobs.FieldViolation{{Field: "url", Description: "required"}}},
		{"unknown fields", `{"url":"u","x":1,"y":2}`, []jobs.FieldViolation{
			{Field: "x", Description: "unknown field"}, {Field: "y", Description: "unknown field"}}},
		{"wrong type", `{"url":5}`, []jobs.FieldViolation{{Field: "url", Description: "must be a string, got number"}}},
		{"null", `{"url":null}`, []jobs.FieldViolation{{Field: "url", Description: "must be a string, got null"}}},
		{"fraction for integer", `{"url":"u","width":1.5}`, []jobs.FieldViolation{{Field: "width", Description: "must be an integer, got number"}}},
		{"below minimum", `{"url":"u","width":0}`, []jobs.FieldViolation{{Field: "width", Description: "must be at least 1, got 0"}}},
		{"above maximum", `{"url":"u","width":5000}`, []jobs.FieldViolation{{Field: "width", Description: "must be at most 4096, got 5000"}}},
		{"too long", `{"url":"https://example.com/a/long/path"}`, []jobs.FieldViolation{{Field: "url", Description: "must be at most 20 characters long, got 31"}}},
		{"not in enum", `{"url":"u","format":"gif"}`, []jobs.FieldViolation{{Field: "format", Description: `must be one of "png", "jpeg", got "gif"`}}},
		{"too many items", `{"url":"u","tags":["a","b","c"]}`, []jobs.FieldViolation{{Field: "tags", Description: "must have at most 2 items, got 3"}}},
		{"empty string", `{"url":"u","note":""}`, []jobs.FieldViolation{{Field: "note", Description: "must not be empty"}}},
		{"too short", `{"url":"u","code":"ab"}`, []jobs.FieldViolation{{Field: "code", Description: "must be at least 3 characters long, got 2"}}},
		{"empty list", `{"url":"u","crop":[]}`, []jobs.FieldViolation{{Field: "crop", Description: "must not be empty"}}},
		{"one item at most", `{"url":"u","crop":[1,2]}`, []jobs.FieldViolation{{Field: "crop", Description: "must have at most 1 item, got 2"}}},
		{"item of wrong type", `{"url":"u","tags":["a",1]}`, []jobs.FieldViolation{{Field: "tags.1", Description: "must be a string, got number"}}},
		{"not an object", `[1]`, []jobs.FieldViolation{{Field: "", Description: "must be an object, got an array"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := typ.ValidateJSON([]byte(tt.payload))
			if tt.want == nil {
				require.NoError(t, err)
				require.NoError(t, resize.Validate([]byte(tt.payload)), "the worker's decoding agrees")
				return
			}
			var ve *jobs.ValidationError
			require.ErrorAs(t, err, &ve)
			require.Equal(t, tt.want, ve.Violations)
		})
	}
}

// entry is a published definition of a type named name.
func entry(name, description string, firstPublished int64) catalog.Entry {
	return catalog.Entry{
		Name: name, Description: description, Queue: "default", TimeoutMillis: 1000, MaxAttempts: 3,
		MaxPayloadBytes: 1 << 10, Schema: json.RawMessage(`{"type":"object"}`), FirstPublished: firstPublished,
	}
}

func TestBuildPicksNewestLiveDefinitionAndReportsConflicts(t *testing.T) {
	t.Parallel()
	v1, v2, v3 := entry("a", "v1", 100), entry("a", "v2", 200), entry("a", "v3", 300)
	gone := entry("b", "b", 100)
	p := catalog.Published{
		Definitions: map[string]catalog.Entry{v1.Digest(): v1, v2.Digest(): v2, v3.Digest(): v3, gone.Digest(): gone},
		Workers: map[string]map[string]string{
			"w1": {"a": v1.Digest()},
			"w2": {"a": v2.Digest()},
		},
	}
	cat, err := catalog.Build(p, catalog.NewCompiler())
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, cat.Names())

	a, _ := cat.Lookup("a")
	require.Equal(t, "v2", a.Description, "the newest definition a live worker serves, not v3 that none does")
	require.Equal(t, []string{"w1", "w2"}, a.Workers)
	require.Len(t, a.Conflicts, 1)
	require.Equal(t, "v1", a.Conflicts[0].Description)

	b, _ := cat.Lookup("b")
	require.Empty(t, b.Workers, "a type whose workers are gone keeps its entry")
	require.Empty(t, b.Conflicts)
}

func TestDigestIgnoresPublicationTime(t *testing.T) {
	t.Parallel()
	require.Equal(t, entry("a", "x", 1).Digest(), entry("a", "x", 2).Digest())
	require.NotEqual(t, entry("a", "x", 1).Digest(), entry("a", "y", 1).Digest())
}

func TestSchemaThatDoesNotCompileRefusesPayloads(t *testing.T) {
	t.Parallel()
	bad := entry("bad", "", 1)
	bad.Schema = json.RawMessage(`{"type":"no-such-type"}`)
	good := entry("good", "", 1)
	cat, err := catalog.Build(catalog.Published{
		Definitions: map[string]catalog.Entry{bad.Digest(): bad, good.Digest(): good},
	}, catalog.NewCompiler())
	require.NoError(t, err, "one bad publication does not break the catalogue")
	typ, _ := cat.Lookup("bad")
	require.True(t, errors.Is(typ.ValidateJSON([]byte(`{}`)), catalog.ErrInvalidSchema))
	typ, _ = cat.Lookup("good")
	require.NoError(t, typ.ValidateJSON([]byte(`{}`)))
}

func TestCacheRefreshesOnUnknownName(t *testing.T) {
	t.Parallel()
	published := catalog.Published{Definitions: map[string]catalog.Entry{}}
	reads := 0
	cache := catalog.NewCache(func(context.Context) (catalog.Published, error) {
		reads++
		return published, nil
	}, catalog.CacheOptions{MissRefresh: 1})
	ctx := context.Background()
	typ, _, err := cache.Lookup(ctx, "a")
	require.NoError(t, err)
	require.Nil(t, typ)

	a := entry("a", "", 1)
	published = catalog.Published{Definitions: map[string]catalog.Entry{a.Digest(): a}}
	typ, _, err = cache.Lookup(ctx, "a")
	require.NoError(t, err)
	require.NotNil(t, typ, "a type published after the last read is found")
	readsBefore := reads
	_, _, err = cache.Lookup(ctx, "a")
	require.NoError(t, err)
	require.Equal(t, readsBefore, reads, "a known name costs no read")
}

func TestCacheKeepsServingWhenTheStoreFails(t *testing.T) {
	t.Parallel()
	a := entry("a", "", 1)
	fail := false
	cache := catalog.NewCache(func(context.Context) (catalog.Published, error) {
		if fail {
			return catalog.Published{}, errors.New("connection refused")
		}
		return catalog.Published{Definitions: map[string]catalog.Entry{a.Digest(): a}}, nil
	}, catalog.CacheOptions{MissRefresh: 1})
	ctx := context.Background()
	_, err := cache.Get(ctx)
	require.NoError(t, err)
	fail = true
	typ, _, err := cache.Lookup(ctx, "a")
	require.NoError(t, err)
	require.NotNil(t, typ)
	_, _, err = cache.Lookup(ctx, "unknown")
	require.NoError(t, err, "an unknown name with the store down answers from the last catalogue")

	empty := catalog.NewCache(func(context.Context) (catalog.Published, error) {
		return catalog.Published{}, errors.New("connection refused")
	}, catalog.CacheOptions{})
	_, err = empty.Get(ctx)
	require.Error(t, err, "no catalogue yet and no store: an error, not an empty catalogue")
}
