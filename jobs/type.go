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
	r := jsonschema.Reflector{DoNotReference: true, ExpandedStruct: true, AllowAdditionalProperties: false}
	schema, err := json.Marshal(r.Reflect(new(P)))
	if err != nil {
		panic(fmt.Sprintf("jobs: %s: payload schema: %v", s.Name, err))
	}
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

// builtin collects the types defined in this package's files. It is written
// only during package initialisation (each type's file calls register), so a
// new job type is one new file; after init it is read-only.
var builtin []*Type

func register(t *Type) *Type {
	builtin = append(builtin, t)
	return t
}

// Builtin returns the job types shipped with jobforge.
func Builtin() []*Type { return append([]*Type(nil), builtin...) }
