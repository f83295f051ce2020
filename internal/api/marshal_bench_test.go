package api

import (
	"bytes"
	"testing"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
)

// BenchmarkDecodeCreateBody decodes REST bodies of CreateJob the way the
// gateway does (restMarshaler): bodies protojson takes as they are, and
// one with a Go-style duration, which takes the checking path.
func BenchmarkDecodeCreateBody(b *testing.B) {
	m := newRESTMarshaler()
	for _, bc := range []struct{ name, body string }{
		{"minimal", `{"type":"simulate","payload":{}}`},
		{"full", `{"type":"simulate","payload":{"fail_times":2},"maxAttempts":3,"timeout":"1.5s","labels":{"a":"b"}}`},
		{"go-duration", `{"type":"simulate","payload":{},"timeout":"1m30s"}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				req := &jobforgev1.CreateJobRequest{}
				if err := m.NewDecoder(bytes.NewReader([]byte(bc.body))).Decode(&req.Job); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
