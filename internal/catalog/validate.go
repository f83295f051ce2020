package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/jobforge/jobforge/jobs"
)

// ErrInvalidSchema is returned by Validate for a type whose published
// schema does not compile: no payload can be checked, so none is accepted.
var ErrInvalidSchema = errors.New("published payload schema does not compile")

// Compiler compiles payload schemas, once per definition digest.
type Compiler struct {
	mu     sync.Mutex
	byHash map[string]compiled
}

type compiled struct {
	schema *jsonschema.Schema
	err    error
}

// NewCompiler returns an empty schema cache.
func NewCompiler() *Compiler { return &Compiler{byHash: map[string]compiled{}} }

// Compile returns the compiled schema of the definition with this digest.
func (c *Compiler) Compile(digest string, schema json.RawMessage) (*jsonschema.Schema, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.byHash[digest]; ok {
		return r.schema, r.err
	}
	var r compiled
	r.schema, r.err = compile(schema)
	c.byHash[digest] = r
	return r.schema, r.err
}

func compile(schema json.RawMessage) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidSchema, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource("payload.json", doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidSchema, err)
	}
	s, err := c.Compile("payload.json")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidSchema, err)
	}
	return s, nil
}

// Validate checks a decoded JSON payload (as encoding/json or
// structpb.Struct.AsMap produce it) against the type's schema. A payload
// that does not fit is a *jobs.ValidationError naming each field, the same
// shape a worker's own decoding reports.
func (t *Type) Validate(payload any) error {
	if t.schemaErr != nil {
		return t.schemaErr
	}
	err := t.schema.Validate(payload)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return jobs.Invalid("", "cannot validate payload: %v", err)
	}
	var out jobs.ValidationError
	collect(ve, &out)
	slices.SortStableFunc(out.Violations, func(a, b jobs.FieldViolation) int { return strings.Compare(a.Field, b.Field) })
	out.Violations = slices.Compact(out.Violations)
	return &out
}

// ValidateJSON is Validate for a payload given as JSON text.
func (t *Type) ValidateJSON(payload []byte) error {
	if len(bytes.TrimSpace(payload)) == 0 {
		payload = []byte("{}")
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return jobs.Invalid("", "malformed JSON: %v", err)
	}
	return t.Validate(v)
}

var printer = message.NewPrinter(language.English)

// collect turns the leaves of a validation error tree into field
// violations, in words a caller can act on.
func collect(e *jsonschema.ValidationError, out *jobs.ValidationError) {
	if len(e.Causes) > 0 {
		for _, c := range e.Causes {
			collect(c, out)
		}
		return
	}
	field := strings.Join(e.InstanceLocation, ".")
	add := func(field, format string, args ...any) {
		out.Violations = append(out.Violations, jobs.FieldViolation{Field: field, Description: fmt.Sprintf(format, args...)})
	}
	join := func(parent, child string) string {
		if parent == "" {
			return child
		}
		return parent + "." + child
	}
	switch k := e.ErrorKind.(type) {
	case *kind.Required:
		for _, m := range k.Missing {
			add(join(field, m), "required")
		}
	case *kind.AdditionalProperties:
		for _, p := range k.Properties {
			add(join(field, p), "unknown field")
		}
	case *kind.Type:
		if field == "" {
			add("", "must be %s, got %s", article(k.Want), article([]string{k.Got}))
			return
		}
		add(field, "must be %s, got %s", article(k.Want), k.Got)
	case *kind.Minimum:
		add(field, "must be at least %s, got %s", num(k.Want), num(k.Got))
	case *kind.Maximum:
		add(field, "must be at most %s, got %s", num(k.Want), num(k.Got))
	case *kind.ExclusiveMinimum:
		add(field, "must be greater than %s, got %s", num(k.Want), num(k.Got))
	case *kind.ExclusiveMaximum:
		add(field, "must be less than %s, got %s", num(k.Want), num(k.Got))
	case *kind.MinLength:
		if k.Want == 1 {
			add(field, "must not be empty")
		} else {
			add(field, "must be at least %s long, got %d", plural(k.Want, "character"), k.Got)
		}
	case *kind.MaxLength:
		add(field, "must be at most %s long, got %d", plural(k.Want, "character"), k.Got)
	case *kind.MinItems:
		if k.Want == 1 {
			add(field, "must not be empty")
		} else {
			add(field, "must have at least %s, got %d", plural(k.Want, "item"), k.Got)
		}
	case *kind.MaxItems:
		add(field, "must have at most %s, got %d", plural(k.Want, "item"), k.Got)
	case *kind.Enum:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			b, _ := json.Marshal(w)
			want[i] = string(b)
		}
		got, _ := json.Marshal(k.Got)
		add(field, "must be one of %s, got %s", strings.Join(want, ", "), got)
	default:
		add(field, "%s", e.ErrorKind.LocalizedString(printer))
	}
}

// article names JSON Schema types for a sentence: "an integer or null".
func article(types []string) string {
	words := make([]string, len(types))
	for i, t := range types {
		switch t {
		case "integer", "object", "array":
			words[i] = "an " + t
		case "null":
			words[i] = "null"
		default:
			words[i] = "a " + t
		}
	}
	return strings.Join(words, " or ")
}

func num(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	return r.FloatString(6)
}

// CompileSchema compiles a payload JSON Schema and returns a function that
// validates JSON payloads against it, reporting field violations as
// Type.Validate does (for workers that declare types as schemas).
func CompileSchema(schema json.RawMessage) (func(payload []byte) error, error) {
	s, err := compile(schema)
	if err != nil {
		return nil, err
	}
	return (&Type{schema: s}).ValidateJSON, nil
}

// plural is "1 item", "2 items".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
