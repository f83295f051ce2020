package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/invopop/jsonschema"
)

// Queue names the built-in types use. Workers read these by default.
const (
	QueueDefault = "default"
	QueueCPU     = "cpu"
)

// Spec declares a job type with payload P and result R. P and R must
// round-trip through encoding/json. When *P has a `Validate() error` method
// it runs after decoding; return a *ValidationError to name fields.
//
// The payload's published JSON Schema is generated from P's struct tags and
// must say what decoding and Validate enforce. A missing field decodes to its
// zero value, so every field is optional in the schema unless it is tagged
// `jsonschema:"required"`: tag exactly the fields whose zero value Validate
// rejects. Bounds (`minimum`, `maximum`, `maxLength` in characters, `enum`)
// in the tags must be the ones Validate checks.
type Spec[P, R any] struct {
	// Name is the stable identifier clients put in Job.type.
	Name string
	// Description says what the job does; shown by ListJobTypes.
	Description string
	// Queue is the default queue (QueueDefault when empty).
	Queue string
	// Timeout is the default per-attempt deadline.
	Timeout time.Duration
	// MaxAttempts is the default number of attempts, including the first.
	MaxAttempts int
	// Example is a valid payload; ListJobTypes shows it and tests submit it.
	Example P
	// MaxPayloadBytes caps the payload's JSON size (default 64 KiB).
	MaxPayloadBytes int
	// Handle executes one attempt. It must return promptly once ctx is done.
	Handle func(ctx context.Context, job *Job, payload P) (R, error)
}

// Type is a registered job type with its payload type erased, so the API and
// the worker runtime can handle every type alike.
type Type struct {
	name        string
	description string
	queue       string
	timeout     time.Duration
	maxAttempts int
	maxPayload  int
	example     json.RawMessage
	schema      json.RawMessage
	decode      func([]byte) (any, error)
	run         func(ctx context.Context, job *Job, payload any) (any, error)
}

// Define builds a Type from a Spec. It panics on a malformed Spec, which is
// a programming error caught by the package's tests.
func Define[P, R any](s Spec[P, R]) *Type {
	if s.Name == "" || s.Handle == nil {
		panic("jobs: Spec needs Name and Handle")
	}
	if s.Queue == "" {
		s.Queue = QueueDefault
	}
	if s.Timeout <= 0 {
		s.Timeout = 30 * time.Minute
	}
	if s.MaxAttempts <= 0 {
		s.MaxAttempts = 3
	}
	if s.MaxPayloadBytes <= 0 {
		s.MaxPayloadBytes = 64 << 10
	}
	example, err := json.Marshal(s.Example)
	if err != nil {
		panic(fmt.Sprintf("jobs: %s: example payload: %v", s.Name, err))
	}
	r := jsonschema.Reflector{
		DoNotReference:             true,
		ExpandedStruct:             true,
		AllowAdditionalProperties:  false,
		RequiredFromJSONSchemaTags: true,
	}
	reflected := r.Reflect(new(P))
	schema, err := json.Marshal(reflected)
	if err != nil {
		panic(fmt.Sprintf("jobs: %s: payload schema: %v", s.Name, err))
	}
	keys := payloadKeysOf(reflected)
	return &Type{
		name:        s.Name,
		description: s.Description,
		queue:       s.Queue,
		timeout:     s.Timeout,
		maxAttempts: s.MaxAttempts,
		maxPayload:  s.MaxPayloadBytes,
		example:     example,
		schema:      schema,
		decode: func(b []byte) (any, error) {
			if err := keys.check(b); err != nil {
				return nil, err
			}
			var p P
			if err := decodeStrict(b, &p); err != nil {
				return nil, err
			}
			if v, ok := any(&p).(interface{ Validate() error }); ok {
				if err := v.Validate(); err != nil {
					var ve *ValidationError
					if errors.As(err, &ve) {
						return nil, ve
					}
					return nil, &ValidationError{Violations: []FieldViolation{{Description: err.Error()}}}
				}
			}
			return p, nil
		},
		run: func(ctx context.Context, job *Job, payload any) (any, error) {
			return s.Handle(ctx, job, payload.(P))
		},
	}
}

// Name returns the stable type name.
func (t *Type) Name() string { return t.name }

// Description says what the job does.
func (t *Type) Description() string { return t.description }

// Queue is the default queue for jobs of this type.
func (t *Type) Queue() string { return t.queue }

// Timeout is the default per-attempt deadline.
func (t *Type) Timeout() time.Duration { return t.timeout }

// MaxAttempts is the default number of attempts.
func (t *Type) MaxAttempts() int { return t.maxAttempts }

// MaxPayloadBytes caps the payload's JSON size.
func (t *Type) MaxPayloadBytes() int { return t.maxPayload }

// Example returns a payload that is valid for this type, as JSON.
func (t *Type) Example() json.RawMessage { return bytes.Clone(t.example) }

// Schema returns the payload's JSON Schema.
func (t *Type) Schema() json.RawMessage { return bytes.Clone(t.schema) }

// Validate decodes and validates a JSON payload. An empty payload is `{}`.
// Errors are *ValidationError.
func (t *Type) Validate(payload []byte) error {
	_, err := t.decode(payload)
	return err
}

// Run decodes the payload and executes the handler, returning the handler's
// result as JSON. A payload that no longer decodes fails permanently.
func (t *Type) Run(ctx context.Context, job *Job, payload []byte) (json.RawMessage, error) {
	p, err := t.decode(payload)
	if err != nil {
		return nil, Permanent(err)
	}
	res, err := t.run(ctx, job, p)
	if err != nil {
		return nil, err
	}
	out, err := json.Marshal(res)
	if err != nil {
		return nil, Permanent(fmt.Errorf("encode result: %w", err))
	}
	return out, nil
}

// decodeStrict decodes one JSON object into v, rejecting unknown fields and
// trailing data, and turns decoder errors into field violations.
func decodeStrict(b []byte, v any) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		b = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeViolation(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Invalid("", "unexpected data after the JSON object")
	}
	return nil
}

// payloadKeys holds the names of an object payload's top-level properties
// as the schema publishes them, and whether each accepts null. encoding/json
// is more lenient than the schema in two ways that check closes: it matches
// a key to a field case-insensitively ("LIMIT" sets limit) and it takes null
// for any field as "leave the zero value".
type payloadKeys struct {
	closed   bool            // additionalProperties is false
	nullable map[string]bool // property name → accepts null
}

func payloadKeysOf(s *jsonschema.Schema) payloadKeys {
	f := payloadKeys{nullable: map[string]bool{}}
	if s == nil || s.Properties == nil {
		return f
	}
	f.closed = s.AdditionalProperties == jsonschema.FalseSchema
	for pair := s.Properties.Oldest(); pair != nil; pair = pair.Next() {
		p := pair.Value
		// A property without a type (json.RawMessage, any) takes null.
		f.nullable[pair.Key] = p == nil || (p.Type == "" && len(p.AnyOf) == 0 && len(p.OneOf) == 0) || p.Type == "null"
	}
	return f
}

// check rejects the top-level keys of a JSON object payload that the schema
// does not name exactly and nulls the schema does not allow. Anything that is
// not an object is left to decodeStrict to report.
func (f payloadKeys) check(b []byte) error {
	if len(f.nullable) == 0 && !f.closed {
		return nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(b, &obj) != nil || obj == nil {
		return nil
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var v ValidationError
	for _, k := range keys {
		nullable, known := f.nullable[k]
		switch {
		case !known && f.closed:
			v.Violations = append(v.Violations, FieldViolation{k, "unknown field"})
		case known && !nullable && bytes.Equal(bytes.TrimSpace(obj[k]), []byte("null")):
			v.Violations = append(v.Violations, FieldViolation{k, "must not be null"})
		}
	}
	if len(v.Violations) > 0 {
		return &v
	}
	return nil
}

func decodeViolation(err error) *ValidationError {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return Invalid("", "must be a JSON object, got %s", typeErr.Value)
		}
		return Invalid(typeErr.Field, "must be %s, got %s", jsonKind(typeErr.Type), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return Invalid("", "malformed JSON at offset %d", syntaxErr.Offset)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return Invalid(field, "unknown field")
	default:
		return Invalid("", "cannot decode payload: %v", err)
	}
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer in range for " + t.Kind().String()
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice, reflect.Array:
		return "an array"
	default:
		return "an object"
	}
}

// Registry is an immutable set of job types, looked up by name.
type Registry struct {
	byName map[string]*Type
	sorted []*Type
}

// NewRegistry builds a registry. Duplicate names are an error.
func NewRegistry(types ...*Type) (*Registry, error) {
	r := &Registry{byName: make(map[string]*Type, len(types))}
	for _, t := range types {
		if _, dup := r.byName[t.name]; dup {
			return nil, fmt.Errorf("jobs: duplicate job type %q", t.name)
		}
		r.byName[t.name] = t
		r.sorted = append(r.sorted, t)
	}
	sort.Slice(r.sorted, func(i, j int) bool { return r.sorted[i].name < r.sorted[j].name })
	return r, nil
}

// Lookup returns the type with the given name.
func (r *Registry) Lookup(name string) (*Type, bool) {
	t, ok := r.byName[name]
	return t, ok
}

// Types returns all types sorted by name.
func (r *Registry) Types() []*Type { return append([]*Type(nil), r.sorted...) }

// RawSpec declares a job type whose payload is JSON checked by a function
// rather than decoded into a Go type: for handlers that are not Go code,
// such as workers in other languages connected over the worker protocol.
// Most job types use Spec.
type RawSpec struct {
	Name, Description, Queue string
	Timeout                  time.Duration
	MaxAttempts              int
	MaxPayloadBytes          int
	// Schema is the payload's JSON Schema, published in the catalogue.
	Schema json.RawMessage
	// Example is a valid payload (optional).
	Example json.RawMessage
	// Validate checks a payload against Schema; errors should be
	// *ValidationError.
	Validate func(payload []byte) error
	// Handle executes one attempt with the validated payload and returns
	// the result as JSON.
	Handle func(ctx context.Context, job *Job, payload json.RawMessage) (json.RawMessage, error)
}

// DefineRaw builds a Type from a RawSpec, with Spec's defaults.
func DefineRaw(s RawSpec) (*Type, error) {
	if s.Name == "" || s.Handle == nil || s.Validate == nil || len(s.Schema) == 0 {
		return nil, errors.New("jobs: RawSpec needs Name, Schema, Validate and Handle")
	}
	if s.Queue == "" {
		s.Queue = QueueDefault
	}
	if s.Timeout <= 0 {
		s.Timeout = 30 * time.Minute
	}
	if s.MaxAttempts <= 0 {
		s.MaxAttempts = 3
	}
	if s.MaxPayloadBytes <= 0 {
		s.MaxPayloadBytes = 64 << 10
	}
	example := s.Example
	if len(example) == 0 {
		example = json.RawMessage("{}")
	}
	return &Type{
		name: s.Name, description: s.Description, queue: s.Queue, timeout: s.Timeout,
		maxAttempts: s.MaxAttempts, maxPayload: s.MaxPayloadBytes,
		example: bytes.Clone(example), schema: bytes.Clone(s.Schema),
		decode: func(b []byte) (any, error) {
			if len(bytes.TrimSpace(b)) == 0 {
				b = []byte("{}")
			}
			if err := s.Validate(b); err != nil {
				return nil, err
			}
			return json.RawMessage(b), nil
		},
		run: func(ctx context.Context, job *Job, payload any) (any, error) {
			return s.Handle(ctx, job, payload.(json.RawMessage))
		},
	}, nil
}
