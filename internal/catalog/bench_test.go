package catalog_test

import (
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/jobforge/jobforge/internal/catalog"
	"github.com/jobforge/jobforge/jobs/builtin"
)

// BenchmarkPayloadValidation compares what the API does per create now
// (validate the decoded payload against the published schema, compiled
// once) with what it did when it ran the type's Go decoding (JSON text in,
// strict decode, Validate). Both start from the google.protobuf.Struct a
// request carries and include encoding it to the JSON the store keeps,
// which the API does either way.
//
//	go test -run '^$' -bench PayloadValidation ./internal/catalog/
func BenchmarkPayloadValidation(b *testing.B) {
	cat, err := catalog.Static("bench", builtin.Types()...)
	if err != nil {
		b.Fatal(err)
	}
	payloads := map[string]string{
		"primes":   `{"limit":1000000}`,
		"simulate": `{"outcome":"fail","fail_times":2,"message":"boom","duration_millis":50,"result":{"ok":true,"n":[1,2,3]}}`,
	}
	for _, typ := range builtin.Types() {
		var m map[string]any
		if err := json.Unmarshal([]byte(payloads[typ.Name()]), &m); err != nil {
			continue // report: no payload in the table
		}
		st, err := structpb.NewStruct(m)
		if err != nil {
			b.Fatal(err)
		}
		published, _ := cat.Lookup(typ.Name())
		b.Run(typ.Name()+"/schema", func(b *testing.B) {
			for b.Loop() {
				m := st.AsMap()
				if _, err := json.Marshal(m); err != nil {
					b.Fatal(err)
				}
				if err := published.Validate(m); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(typ.Name()+"/go-decode", func(b *testing.B) {
			for b.Loop() {
				raw, err := json.Marshal(st.AsMap())
				if err != nil {
					b.Fatal(err)
				}
				if err := typ.Validate(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
