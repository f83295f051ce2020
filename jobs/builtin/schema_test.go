package builtin_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/jobs/builtin"
)

// TestSchemaAgreesWithValidation checks, for every built-in job type, that the
// published JSON Schema and the server's decoding and validation accept and
// reject the same payloads. The payloads are derived from the schema itself
// (its required fields, types, bounds, enums and closedness) and the type's
// example, so a tag that says more or less than Validate fails here. Each
// payload is encoded with json.Marshal from a map, as the API encodes the
// google.protobuf.Struct a client sends, and checked against the schema with
// an independent validator.
func TestSchemaAgreesWithValidation(t *testing.T) {
	t.Parallel()
	// Disagreements known and not yet fixed, by type and case name; each is
	// skipped with its reason so that it shows in -v output.
	known := map[string]string{
		"simulate/message at maxLength in two-byte characters": "simulate counts message in bytes, the schema's maxLength in characters",
	}
	for _, typ := range builtin.Types() {
		t.Run(typ.Name(), func(t *testing.T) {
			t.Parallel()
			schema := compileSchema(t, typ.Schema())
			var example map[string]any
			require.NoError(t, json.Unmarshal(typ.Example(), &example))
			for _, c := range payloadCases(t, typ.Schema(), example) {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					if reason, ok := known[typ.Name()+"/"+c.name]; ok {
						t.Skip(reason)
					}
					payload, err := json.Marshal(c.payload)
					require.NoError(t, err)
					inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
					require.NoError(t, err)
					schemaErr := schema.Validate(inst)
					serverErr := typ.Validate(payload)
					require.Equal(t, c.valid, schemaErr == nil, "schema on %s: %v", payload, schemaErr)
					require.Equal(t, c.valid, serverErr == nil, "server on %s: %v", payload, serverErr)
				})
			}
		})
	}
}

func compileSchema(t *testing.T, schema []byte) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	require.NoError(t, c.AddResource("payload.json", doc))
	s, err := c.Compile("payload.json")
	require.NoError(t, err)
	return s
}

// propertySchema is the part of a property's schema the cases are derived from.
type propertySchema struct {
	Type      string   `json:"type"`
	Minimum   *float64 `json:"minimum"`
	Maximum   *float64 `json:"maximum"`
	MaxLength *int     `json:"maxLength"`
	Enum      []any    `json:"enum"`
}

type payloadCase struct {
	name    string
	payload map[string]any
	valid   bool
}

// payloadCases derives payloads from an object schema and a valid example.
func payloadCases(t *testing.T, schema []byte, example map[string]any) []payloadCase {
	t.Helper()
	var s struct {
		Properties           map[string]json.RawMessage `json:"properties"`
		Required             []string                   `json:"required"`
		AdditionalProperties *bool                      `json:"additionalProperties"`
	}
	require.NoError(t, json.Unmarshal(schema, &s))
	require.NotEmpty(t, s.Properties, "an object schema with properties")
	closed := s.AdditionalProperties != nil && !*s.AdditionalProperties
	require.True(t, closed, "payload schemas are closed: decoding rejects unknown fields")

	with := func(key string, v any) map[string]any {
		m := maps.Clone(example)
		m[key] = v
		return m
	}
	cases := []payloadCase{
		{"example", maps.Clone(example), true},
		{"empty object", map[string]any{}, len(s.Required) == 0},
		{"unknown field", with("no_such_field", 1), false},
	}
	names := make([]string, 0, len(s.Properties))
	for name := range s.Properties {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		required := slices.Contains(s.Required, name)
		without := maps.Clone(example)
		delete(without, name)
		cases = append(cases, payloadCase{name + " missing", without, !required})
		if v, ok := example[name]; ok && strings.ToUpper(name) != name {
			m := maps.Clone(example)
			delete(m, name)
			m[strings.ToUpper(name)] = v
			cases = append(cases, payloadCase{name + " spelt " + strings.ToUpper(name), m, false})
		}

		var p propertySchema
		if string(s.Properties[name]) == "true" {
			continue // any JSON value
		}
		require.NoError(t, json.Unmarshal(s.Properties[name], &p), "property %s", name)
		require.NotEmpty(t, p.Type, "property %s has a type", name)
		for _, w := range wrongTypes {
			if !w.is(p.Type) {
				cases = append(cases, payloadCase{fmt.Sprintf("%s as %s", name, w.name), with(name, w.value), false})
			}
		}
		if p.Minimum != nil {
			cases = append(cases,
				payloadCase{name + " at minimum", with(name, *p.Minimum), true},
				payloadCase{name + " below minimum", with(name, *p.Minimum-1), false})
		}
		if p.Maximum != nil {
			cases = append(cases,
				payloadCase{name + " at maximum", with(name, *p.Maximum), true},
				payloadCase{name + " above maximum", with(name, *p.Maximum+1), false})
		}
		if p.Type == "integer" {
			mid := 1.5
			if p.Minimum != nil {
				mid = math.Floor(*p.Minimum) + 0.5
			}
			cases = append(cases, payloadCase{name + " fractional", with(name, mid), false})
		}
		if p.MaxLength != nil {
			n := *p.MaxLength
			cases = append(cases,
				payloadCase{name + " at maxLength", with(name, strings.Repeat("a", n)), true},
				payloadCase{name + " at maxLength in two-byte characters", with(name, strings.Repeat("é", n)), true},
				payloadCase{name + " above maxLength", with(name, strings.Repeat("a", n+1)), false})
		}
		for _, e := range p.Enum {
			cases = append(cases, payloadCase{fmt.Sprintf("%s is %v", name, e), with(name, e), true})
		}
		if len(p.Enum) > 0 {
			cases = append(cases, payloadCase{name + " outside enum", with(name, "not-one-of-them"), false})
		}
	}
	return cases
}

// wrongTypes holds one value of each JSON type, for replacing a property's
// value with one its schema type does not admit.
var wrongTypes = []struct {
	name  string
	value any
	is    func(schemaType string) bool
}{
	{"string", "x", func(s string) bool { return s == "string" }},
	{"integer", 7, func(s string) bool { return s == "integer" || s == "number" }},
	{"fractional number", 2.5, func(s string) bool { return s == "number" }},
	{"boolean", true, func(s string) bool { return s == "boolean" }},
	{"array", []any{}, func(s string) bool { return s == "array" }},
	{"object", map[string]any{}, func(s string) bool { return s == "object" }},
	{"null", nil, func(s string) bool { return s == "null" }},
}
