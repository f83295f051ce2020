package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// restMarshaler is the REST gateway's JSON: protojson, as runtime.JSONPb
// writes and reads it, with three changes for people typing requests:
//
//   - google.protobuf.Duration fields of a request also accept Go-style
//     durations ("1m", "90s", "1h30m", "250ms"); responses keep protojson's
//     form ("60s").
//   - a body that does not decode is reported per field: the violations
//     (unknown field, wrong JSON type, malformed duration or timestamp)
//     become a google.rpc.BadRequest like validation errors' (see
//     httpErrorHandler), instead of protojson's "proto: (line …)" text.
//   - a response message (…Response) lists its empty repeated fields as []
//     (`{"jobs": []}`, not `{}`), so clients can iterate without a nil check.
type restMarshaler struct{ runtime.JSONPb }

func newRESTMarshaler() *restMarshaler {
	return &restMarshaler{runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: false},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}}
}

// Marshal is JSONPb's, plus the empty lists of response messages.
func (m *restMarshaler) Marshal(v any) ([]byte, error) {
	b, err := m.JSONPb.Marshal(v)
	if err != nil {
		return nil, err
	}
	b = compactJSON(b)
	if msg, ok := v.(proto.Message); ok {
		b = withEmptyLists(msg, b)
	}
	return b, nil
}

// compactJSON removes the insignificant whitespace protojson adds: its
// output is deliberately unstable (a space after some commas and colons,
// depending on the binary), and clients, tests and documented examples
// deserve the same bytes for the same message.
func compactJSON(b []byte) []byte {
	var out bytes.Buffer
	out.Grow(len(b))
	if err := json.Compact(&out, b); err != nil {
		return b
	}
	return out.Bytes()
}

// withEmptyLists adds `"field":[]` to b, the JSON of msg, for each empty
// top-level repeated field when msg is a response message.
func withEmptyLists(msg proto.Message, b []byte) []byte {
	r := msg.ProtoReflect()
	if !strings.HasSuffix(string(r.Descriptor().Name()), "Response") {
		return b
	}
	var empty []string
	fields := r.Descriptor().Fields()
	for i := range fields.Len() {
		if fd := fields.Get(i); fd.IsList() && r.Get(fd).List().Len() == 0 {
			empty = append(empty, strconv.Quote(fd.JSONName())+":[]")
		}
	}
	rest, ok := bytes.CutPrefix(bytes.TrimSpace(b), []byte("{"))
	if len(empty) == 0 || !ok {
		return b
	}
	out := []byte("{" + strings.Join(empty, ","))
	if !bytes.HasPrefix(bytes.TrimSpace(rest), []byte("}")) {
		out = append(out, ',')
	}
	return append(out, rest...)
}

// NewDecoder decodes a request body (see restMarshaler). When r is a
// requestBody (guardBody made it), the violations are left on it for the
// error handler: the gateway turns a decoding error into a status that
// keeps only its text.
func (m *restMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		raw, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			return io.EOF // no body: the gateway leaves the request empty
		}
		msg := decodeTarget(v)
		if msg == nil {
			return m.JSONPb.Unmarshal(raw, v)
		}
		// A body protojson takes as it is needs neither rewriting nor
		// violations (checkBody accepts all that protojson accepts, and
		// decodes it the same): walking it first cost ~8 % of a REST
		// create's CPU. protojson resets msg before it decodes.
		if m.UnmarshalOptions.Unmarshal(raw, msg) == nil {
			return nil
		}
		fixed, vs := checkBody(msg.ProtoReflect().Descriptor(), raw, m.UnmarshalOptions)
		if len(vs) == 0 {
			if err = m.UnmarshalOptions.Unmarshal(fixed, msg); err == nil {
				return nil
			}
			vs = []*fieldViolation{violation("", "%s", protojsonMessage(err))}
		}
		if rb, ok := r.(*requestBody); ok {
			rb.violations = vs
		}
		return errors.New(invalidArgumentMessage(vs))
	})
}

// decodeTarget is the message the gateway decodes a body into: v itself,
// or for a body mapped to a field (`body: "job"`), the message the pointer
// v points to, allocated if nil. Anything else is nil.
func decodeTarget(v any) proto.Message {
	if msg, ok := v.(proto.Message); ok {
		return msg
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Pointer {
		return nil
	}
	p := rv.Elem()
	if !p.Type().Implements(reflect.TypeFor[proto.Message]()) {
		return nil
	}
	if p.IsNil() {
		p.Set(reflect.New(p.Type().Elem()))
	}
	return p.Interface().(proto.Message)
}

// requestBody is a REST request body that guardBody has read and checked;
// the decoder records its field violations here.
type requestBody struct {
	*bytes.Reader
	violations []*fieldViolation
}

func (*requestBody) Close() error { return nil }

// decodeViolations are the field violations of a request the gateway could
// not decode: those the decoder left on r's body, with paths from the
// request message (`job.timeout` for CreateJob, whose body is the job), or
// those of its query parameters. Nil when there are none.
func decodeViolations(ctx context.Context, r *http.Request) []*fieldViolation {
	md := rpcMethod(ctx)
	if md == nil {
		return nil
	}
	if rb, ok := r.Body.(*requestBody); ok && len(rb.violations) > 0 {
		prefix := bodyField(md)
		out := make([]*fieldViolation, len(rb.violations))
		for i, v := range rb.violations {
			out[i] = violation(joinPath(prefix, v.GetField()), "%s", v.GetDescription())
		}
		return out
	}
	return queryViolations(md.Input(), r.URL.Query())
}

// queryViolations finds the query parameters the gateway cannot parse into
// a request of type md, by parsing each on its own.
func queryViolations(md protoreflect.MessageDescriptor, q url.Values) []*fieldViolation {
	var vs []*fieldViolation
	for _, key := range slices.Sorted(maps.Keys(q)) {
		err := runtime.PopulateQueryParameters(dynamicpb.NewMessage(md), url.Values{key: q[key]}, utilities.NewDoubleArray(nil))
		if err == nil {
			continue
		}
		path, fd := queryField(md, key)
		if fd == nil {
			vs = append(vs, violation(key, "%s", err))
			continue
		}
		vs = append(vs, violation(path, "expected %s, got %s", expected(fd), jsonKind(q.Get(key))))
	}
	return vs
}

// queryField resolves a query parameter name ("pageSize", "a.b_c") to its
// field and proto path.
func queryField(md protoreflect.MessageDescriptor, key string) (string, protoreflect.FieldDescriptor) {
	var path string
	var fd protoreflect.FieldDescriptor
	for _, seg := range strings.Split(key, ".") {
		if md == nil {
			return "", nil
		}
		if fd = md.Fields().ByJSONName(seg); fd == nil {
			fd = md.Fields().ByTextName(seg)
		}
		if fd == nil {
			return "", nil
		}
		path = joinPath(path, string(fd.Name()))
		md = fd.Message()
	}
	return path, fd
}

// rpcMethod is the method the gateway is calling in ctx, or nil.
func rpcMethod(ctx context.Context) protoreflect.MethodDescriptor {
	method, ok := runtime.RPCMethod(ctx) // "/pkg.Service/Method"
	if !ok {
		return nil
	}
	name := protoreflect.FullName(strings.ReplaceAll(strings.TrimPrefix(method, "/"), "/", "."))
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
	if err != nil {
		return nil
	}
	md, _ := d.(protoreflect.MethodDescriptor)
	return md
}

// bodyField is the request field the HTTP body of md maps to (its
// google.api.http body), or "" when the body is the whole request.
func bodyField(md protoreflect.MethodDescriptor) string {
	rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
	if body := rule.GetBody(); body != "*" {
		return body
	}
	return ""
}

func joinPath(prefix, path string) string {
	switch {
	case prefix == "":
		return path
	case path == "" || strings.HasPrefix(path, "["):
		return prefix + path
	}
	return prefix + "." + path
}

// protojsonLocation is the "proto: (line 1:2): " that starts protojson's
// errors; positions in a rewritten body mean nothing to the client.
var protojsonLocation = regexp.MustCompile(`^proto:\s*(\(line \d+:\d+\):\s*)?`)

func protojsonMessage(err error) string {
	return protojsonLocation.ReplaceAllString(err.Error(), "")
}

// checkBody walks a JSON body against the message it decodes into. It
// rewrites Go-style durations into protojson's form and collects a
// violation for every field protojson would refuse, with a path of proto
// field names like validation errors' (`retry_policy.max_backoff`,
// `requests[0].job.type`, `labels["k"]`). It returns the body to decode.
func checkBody(md protoreflect.MessageDescriptor, raw []byte, opts protojson.UnmarshalOptions) ([]byte, []*fieldViolation) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return raw, []*fieldViolation{violation("", "malformed JSON: %v", err)}
	}
	c := &bodyChecker{opts: opts}
	tree = c.message(md, tree, "")
	if len(c.violations) > 0 || !c.rewrote {
		return raw, c.violations
	}
	fixed, err := json.Marshal(tree)
	if err != nil {
		return raw, nil // protojson reports it
	}
	return fixed, nil
}

type bodyChecker struct {
	opts       protojson.UnmarshalOptions
	violations []*fieldViolation
	rewrote    bool
}

func (c *bodyChecker) add(path, format string, args ...any) {
	c.violations = append(c.violations, violation(path, format, args...))
}

func (c *bodyChecker) message(md protoreflect.MessageDescriptor, v any, path string) any {
	obj, ok := v.(map[string]any)
	if !ok {
		c.add(path, "expected a JSON object, got %s", jsonKind(v))
		return v
	}
	for _, key := range slices.Sorted(maps.Keys(obj)) {
		fd := md.Fields().ByJSONName(key)
		if fd == nil {
			fd = md.Fields().ByTextName(key)
		}
		if fd == nil {
			c.add(joinPath(path, key), "unknown field%s", suggestField(md, key))
			continue
		}
		obj[key] = c.field(fd, obj[key], joinPath(path, string(fd.Name())))
	}
	return obj
}

func (c *bodyChecker) field(fd protoreflect.FieldDescriptor, v any, path string) any {
	switch {
	case v == nil:
		return nil // null: the field is unset
	case fd.IsMap():
		obj, ok := v.(map[string]any)
		if !ok {
			c.add(path, "expected a JSON object, got %s", jsonKind(v))
			return v
		}
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			obj[k] = c.value(fd.MapValue(), obj[k], fmt.Sprintf("%s[%q]", path, k))
		}
		return obj
	case fd.IsList():
		arr, ok := v.([]any)
		if !ok {
			c.add(path, "expected a JSON array, got %s", jsonKind(v))
			return v
		}
		for i := range arr {
			arr[i] = c.value(fd, arr[i], fmt.Sprintf("%s[%d]", path, i))
		}
		return arr
	}
	return c.value(fd, v, path)
}

// value checks one value of fd's type (a map value or list element too).
func (c *bodyChecker) value(fd protoreflect.FieldDescriptor, v any, path string) any {
	if fd.Message() != nil {
		switch fd.Message().FullName() {
		case "google.protobuf.Duration":
			return c.duration(v, path)
		case "google.protobuf.Timestamp":
			c.timestamp(v, path)
			return v
		case "google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue":
		default:
			if !strings.HasPrefix(string(fd.Message().FullName()), "google.protobuf.") {
				return c.message(fd.Message(), v, path)
			}
		}
	}
	if !c.decodes(fd, v) {
		c.add(path, "expected %s, got %s", expected(fd), jsonKind(v))
	}
	return v
}

// decodes reports whether protojson accepts v as a value of fd, by decoding
// it on its own into a message of fd's containing type (for a map value,
// the map's entry type).
func (c *bodyChecker) decodes(fd protoreflect.FieldDescriptor, v any) bool {
	if fd.IsList() {
		v = []any{v}
	}
	b, err := json.Marshal(map[string]any{fd.JSONName(): v})
	if err != nil {
		return false
	}
	return c.opts.Unmarshal(b, dynamicpb.NewMessage(fd.ContainingMessage())) == nil
}

// duration accepts protojson's form ("90s", "0.5s") and Go's ("1m30s",
// "1h", "250ms"), and returns protojson's.
func (c *bodyChecker) duration(v any, path string) any {
	s, ok := v.(string)
	if ok {
		if err := protojson.Unmarshal([]byte(strconv.Quote(s)), &durationpb.Duration{}); err == nil {
			return s
		}
		if d, err := time.ParseDuration(s); err == nil {
			b, err := protojson.Marshal(durationpb.New(d))
			if err == nil {
				c.rewrote = true
				return strings.Trim(string(b), `"`)
			}
		}
	}
	c.add(path, `invalid duration: got %s; write seconds with an "s" suffix ("90s", "0.5s") or Go-style units ("1m30s", "1h", "250ms")`, jsonKind(v))
	return v
}

func (c *bodyChecker) timestamp(v any, path string) {
	if s, ok := v.(string); ok {
		if _, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return
		}
	}
	c.add(path, `invalid timestamp: got %s; write an RFC 3339 time in UTC or with an offset, e.g. "2030-01-02T15:04:05Z"`, jsonKind(v))
}

// expected describes what a field of fd's type accepts.
func expected(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return "a string"
	case protoreflect.BoolKind:
		return "true or false"
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return "a 32-bit integer"
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return "a non-negative 32-bit integer"
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return "a 64-bit integer (a number or a string of digits)"
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return "a non-negative 64-bit integer (a number or a string of digits)"
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return "a number"
	case protoreflect.BytesKind:
		return "a base64 string"
	case protoreflect.EnumKind:
		var names []string
		vals := fd.Enum().Values()
		for i := range vals.Len() {
			if n := string(vals.Get(i).Name()); !strings.HasSuffix(n, "_UNSPECIFIED") {
				names = append(names, n)
			}
		}
		return "one of " + strings.Join(names, ", ")
	case protoreflect.MessageKind, protoreflect.GroupKind:
		switch fd.Message().FullName() {
		case "google.protobuf.Struct":
			return "a JSON object"
		case "google.protobuf.ListValue":
			return "a JSON array"
		}
		return "a valid " + string(fd.Message().FullName())
	}
	return "a valid " + fd.Kind().String()
}

// jsonKind describes a decoded JSON value for an error message.
func jsonKind(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		if len(v) > 40 {
			v = v[:40] + "…"
		}
		return strconv.Quote(v)
	case json.Number:
		return "the number " + v.String()
	case bool:
		return strconv.FormatBool(v)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// suggestField names the field a misspelt key probably meant: one whose
// name matches ignoring case and underscores.
func suggestField(md protoreflect.MessageDescriptor, key string) string {
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }
	fields := md.Fields()
	for i := range fields.Len() {
		if fd := fields.Get(i); norm(fd.JSONName()) == norm(key) {
			return fmt.Sprintf("; did you mean %q?", fd.JSONName())
		}
	}
	return ""
}
