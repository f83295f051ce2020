package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// printJSON writes m as protobuf JSON (the REST API's encoding), indented
// by two spaces with one space after each colon. protojson deliberately
// varies its whitespace from build to build (so nobody compares its bytes);
// encoding/json re-indents it, so the same message always prints the same.
func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.Marshal(m)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

// jsonLine writes m as one line of compact protobuf JSON (NDJSON streams),
// without protojson's varying whitespace.
func jsonLine(w io.Writer, m proto.Message) error {
	b, err := protojson.Marshal(m)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

// compactJSON renders a payload or result as compact JSON with sorted keys
// (stable, unlike protojson's output).
func compactJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// valueJSON renders an optional Value; "" when unset.
func valueJSON(v *structpb.Value) string {
	if v == nil {
		return ""
	}
	return compactJSON(v.AsInterface())
}

// structJSON renders an optional Struct; {} when unset.
func structJSON(s *structpb.Struct) string {
	if s == nil {
		return "{}"
	}
	return compactJSON(s.AsMap())
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// when formats a timestamp in local time with its distance from now.
func when(ts *timestamppb.Timestamp, now time.Time) string {
	if ts == nil {
		return ""
	}
	t := ts.AsTime().Local()
	d := now.Sub(t)
	switch {
	case d >= 0:
		return fmt.Sprintf("%s (%s ago)", t.Format("2006-01-02 15:04:05 MST"), short(d))
	default:
		return fmt.Sprintf("%s (in %s)", t.Format("2006-01-02 15:04:05 MST"), short(-d))
	}
}

// short is a compact duration for tables: 450ms, 12s, 5m, 3h, 2d.
func short(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

// age is short(now - ts), or "-".
func age(ts *timestamppb.Timestamp, now time.Time) string {
	if ts == nil {
		return "-"
	}
	return short(max(now.Sub(ts.AsTime()), 0))
}

// labelsText renders labels as k=v pairs sorted by key.
func labelsText(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// resourceName accepts "collection/id" or a bare id and returns the full
// resource name.
func resourceName(collection, arg string) (string, error) {
	id := strings.TrimPrefix(arg, collection+"/")
	if !idPattern.MatchString(id) {
		return "", usagef("%q is not a %s name: want %s/ID or ID", arg, strings.TrimSuffix(collection, "s"), collection)
	}
	return collection + "/" + id, nil
}

// maxExactInt is the largest integer a JSON number (a float64 in a
// google.protobuf.Struct) holds exactly.
const maxExactInt = 1 << 53

// parsePayload reads a JSON object from --payload or --payload-file ("-"
// is stdin). An empty payload is nil (the server treats it as {}).
func (o *options) parsePayload(inline, file string) (*structpb.Struct, error) {
	src, data := "--payload", []byte(inline)
	if file != "" {
		src = "--payload-file"
		var err error
		if file == "-" {
			data, err = io.ReadAll(o.stdin)
		} else {
			data, err = os.ReadFile(file)
		}
		if err != nil {
			return nil, usagef("%s: %v", src, err)
		}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, usagef("%s: invalid JSON: %v", src, err)
	}
	if dec.More() {
		return nil, usagef("%s: want one JSON object, found more after it", src)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, usagef("%s: want a JSON object, got %s", src, bytes.TrimSpace(data))
	}
	if err := checkNumbers("", obj); err != nil {
		return nil, usagef("%s: %v", src, err)
	}
	s := &structpb.Struct{}
	if err := protojson.Unmarshal(data, s); err != nil {
		return nil, usagef("%s: %v", src, err)
	}
	return s, nil
}

// checkNumbers refuses integers that a JSON number would silently round.
func checkNumbers(path string, v any) error {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if err := checkNumbers(strings.TrimPrefix(path+"."+k, "."), e); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range v {
			if err := checkNumbers(fmt.Sprintf("%s[%d]", path, i), e); err != nil {
				return err
			}
		}
	case json.Number:
		if strings.ContainsAny(string(v), ".eE") {
			return nil // written as a float: rounding is expected
		}
		if i, err := v.Int64(); err != nil || i > maxExactInt || i < -maxExactInt {
			return fmt.Errorf("%s: integer %s is beyond ±2^53 and would be rounded", path, v)
		}
	}
	return nil
}

// parseLabels turns repeated --label k=v flags into a map.
func parseLabels(flags []string) (map[string]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(flags))
	for _, f := range flags {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return nil, usagef("--label %q: want key=value", f)
		}
		if _, dup := m[k]; dup {
			return nil, usagef("--label %q: key %q given twice", f, k)
		}
		m[k] = v
	}
	return m, nil
}
