package api

import (
	"testing"

	"buf.build/go/protovalidate"
	"google.golang.org/protobuf/types/known/structpb"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
)

// BenchmarkValidateCreate is protovalidate's check of a minimal CreateJob
// request, which every create and every item of a batch pays.
func BenchmarkValidateCreate(b *testing.B) {
	v, err := protovalidate.New()
	if err != nil {
		b.Fatal(err)
	}
	req := &jobforgev1.CreateJobRequest{Job: &jobforgev1.Job{Type: "simulate", Payload: &structpb.Struct{}}}
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Validate(req); err != nil {
			b.Fatal(err)
		}
	}
}
