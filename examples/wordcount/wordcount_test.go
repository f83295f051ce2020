package wordcount_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"example.com/wordcount"

	"github.com/jobforge/jobforge/jobs/jobstest"
)

func TestWordcount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, payload string
		want          wordcount.Result
	}{
		{"example", `{"text":"the quick brown fox"}`, wordcount.Result{Words: 4, Longest: "quick"}},
		{"spaces", `{"text":"  a\tbb\n ccc  "}`, wordcount.Result{Words: 3, Longest: "ccc"}},
		{"unicode", `{"text":"größer als"}`, wordcount.Result{Words: 2, Longest: "größer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := jobstest.Run(context.Background(), wordcount.Type, tt.payload, 1)
			require.NoError(t, err)
			var got wordcount.Result
			require.NoError(t, json.Unmarshal(out.Result, &got))
			require.Equal(t, tt.want, got)
			require.NotEmpty(t, out.Progress)
			require.Equal(t, 100, out.Progress[len(out.Progress)-1].Percent)
		})
	}
}

func TestWordcountRejectsBadPayloads(t *testing.T) {
	t.Parallel()
	for _, payload := range []string{`{}`, `{"text":""}`, `{"text":"a","pause_ms":-1}`, `{"text":"a","extra":1}`} {
		require.Error(t, wordcount.Type.Validate([]byte(payload)), payload)
	}
}
