package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"unicode/utf8"

	"buf.build/go/protovalidate"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/catalog"
	"github.com/jobforge/jobforge/internal/store"
	"github.com/jobforge/jobforge/jobs"
	"github.com/jobforge/jobforge/jobs/builtin"
)

// FuzzDecodeCreateRequest runs untrusted REST bodies through everything
// that happens before the store: the body guard, the gateway's JSON
// decoding (restMarshaler), protovalidate and the service's own
// validation. None may panic, a body the guard rejects never reaches the
// decoder, and every decoding error comes with field violations.
func FuzzDecodeCreateRequest(f *testing.F) {
	for _, seed := range []string{
		`{"type":"primes","payload":{"limit":1000}}`,
		`{"type":"simulate","payload":{"fail_times":2},"maxAttempts":3,"timeout":"1.5s","labels":{"a":"b"}}`,
		`{"type":"report","payload":{"pages":3},"scheduleDelay":"10s","retryPolicy":{"initialBackoff":"1s","multiplier":2}}`,
		`{"type":"primes","payload":{"limit":9007199254740993}}`,
		`{"type":"x","type":"y"}`,
		`[[[[[[]]]]]]`,
		`{"type":"simulate","scheduleTime":"2999-01-01T00:00:00Z"}`,
		"{\"type\":\"\xff\"}",
		`{"type":"simulate","timeout":"1m30s","retryPolicy":{"maxBackoff":"1h","initialBackoff":"250ms"}}`,
		`{"type":"simulate","colour":"red","timeout":"soon","labels":{"a":1},"maxAttempts":"x"}`,
		``,
	} {
		f.Add([]byte(seed))
	}
	reg, err := jobs.NewRegistry(builtin.Types()...)
	if err != nil {
		f.Fatal(err)
	}
	// The API validates with the published JSON Schema; whatever it
	// accepts, the worker's own decoding must accept too.
	cat, err := catalog.Static("fuzz", builtin.Types()...)
	if err != nil {
		f.Fatal(err)
	}
	svc := NewService(nil, catalog.Fixed{Catalog: cat}, []string{"cpu", "default"}, []byte("k"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	v, err := protovalidate.New()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if checkJSON(body) != nil {
			return
		}
		// The decoder skips checkBody for a body protojson takes as it is:
		// checkBody must accept such a body whole and leave it unchanged.
		m := newRESTMarshaler()
		if m.UnmarshalOptions.Unmarshal(body, &jobforgev1.Job{}) == nil {
			fixed, vs := checkBody((&jobforgev1.Job{}).ProtoReflect().Descriptor(), body, m.UnmarshalOptions)
			if len(vs) > 0 || !bytes.Equal(fixed, body) {
				t.Fatalf("protojson accepts %q but checkBody rewrites it to %q or refuses it: %v", body, fixed, vs)
			}
		}
		req := &jobforgev1.CreateJobRequest{}
		rb := &requestBody{Reader: bytes.NewReader(body)}
		if err := newRESTMarshaler().NewDecoder(rb).Decode(&req.Job); err != nil {
			if !errors.Is(err, io.EOF) && len(rb.violations) == 0 {
				t.Fatalf("decoding error without a field violation: %v", err)
			}
			return
		}
		job := req.GetJob()
		if v.Validate(req) != nil {
			return
		}
		nj, err := svc.newJob(context.Background(), job, jobPath{name: "job", item: -1})
		if err != nil {
			return
		}
		typ, ok := reg.Lookup(nj.Type)
		if !ok {
			t.Fatalf("accepted unknown type %q", nj.Type)
		}
		if err := typ.Validate(nj.Payload); err != nil {
			t.Fatalf("accepted a payload its type rejects: %v", err)
		}
		if nj.MaxAttempts < 1 || nj.Timeout <= 0 {
			t.Fatalf("accepted job without defaults: %+v", nj)
		}
	})
}

// FuzzCheckJSON: the body guard never panics, and whatever it accepts is
// JSON that encoding/json can read.
func FuzzCheckJSON(f *testing.F) {
	for _, seed := range []string{`{}`, `{"a":[1,2,{"b":null}]}`, `{"a":1,"a":2}`, `[` + string(bytes.Repeat([]byte("["), 100)), `1e400`, `"\ud800"`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if err := checkJSON(body); err != nil {
			return
		}
		if len(bytes.TrimSpace(body)) == 0 {
			return
		}
		if !json.Valid(body) {
			t.Fatalf("guard accepted invalid JSON %q", body)
		}
	})
}

// FuzzPageToken: arbitrary tokens never panic and never verify; real
// tokens round-trip, and only for their own filter and tenant.
func FuzzPageToken(f *testing.F) {
	p := pageTokens{key: []byte("secret")}
	good := p.encode(&store.Cursor{Score: 42, ID: "abc"}, []byte("filter01"), "t1")
	f.Add(good, int64(7), "id")
	f.Add("", int64(0), "")
	f.Add("eyJzIjoxfQ.AAAA", int64(-1), "x")
	f.Add(good[:len(good)-2]+"AA", int64(1), "y")
	f.Fuzz(func(t *testing.T, tok string, score int64, id string) {
		if tok != good {
			if _, err := p.decode(tok, []byte("filter01"), "t1"); err == nil {
				t.Fatalf("forged token %q verified", tok)
			}
		}
		if !utf8.ValidString(id) {
			return // job ids are ASCII; JSON would replace invalid bytes
		}
		enc := p.encode(&store.Cursor{Score: score, ID: id}, []byte("filter02"), "t2")
		c, err := p.decode(enc, []byte("filter02"), "t2")
		if err != nil || c.Score != score || c.ID != id {
			t.Fatalf("round trip failed: %v %+v", err, c)
		}
		if _, err := p.decode(enc, []byte("filter01"), "t2"); err == nil {
			t.Fatal("token accepted for another filter")
		}
		if _, err := p.decode(enc, []byte("filter02"), "t1"); err == nil {
			t.Fatal("token accepted for another tenant")
		}
	})
}

// FuzzParseFilter: no panic; an accepted filter's canonical form parses to
// the same canonical form (so page tokens stay bound to equivalent filters).
func FuzzParseFilter(f *testing.F) {
	for _, seed := range []string{
		`state = FAILED`,
		`type = "primes" AND labels.team = data AND create_time > "2026-01-01T00:00:00Z"`,
		`queue != cpu AND create_time <= "2026-01-01T00:00:00.5Z"`,
		`state = "DONE"`, `a OR b`, `labels. = x`, `"unterminated`, `create_time > yesterday`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := parseFilter(s)
		if err != nil {
			return
		}
		again, err := parseFilter(flt.canonical)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", flt.canonical, s, err)
		}
		if again.canonical != flt.canonical {
			t.Fatalf("canonical form unstable: %q → %q", flt.canonical, again.canonical)
		}
		flt.match(&store.Record{State: store.StatePending, Labels: map[string]string{"team": "data"}})
	})
}
