package store

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRetryPolicyText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		text    string
		want    RetryPolicy
		wantErr bool
	}{
		{name: "all fields", text: "1500,60000,1.5,0.1", want: RetryPolicy{Initial: 1500 * time.Millisecond, Max: time.Minute, Multiplier: 1.5, Jitter: 0.1}},
		{name: "defaults", text: "0,0,0,0", want: RetryPolicy{}},
		{name: "too few fields", text: "1000,2000,2", wantErr: true},
		{name: "not a number", text: "1s,2000,2,0.1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseRetryPolicy(tt.text)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.text, got.String())
			// JSON carries the same text.
			b, err := json.Marshal(got)
			require.NoError(t, err)
			require.JSONEq(t, `"`+tt.text+`"`, string(b))
			var back RetryPolicy
			require.NoError(t, json.Unmarshal(b, &back))
			require.Equal(t, got, back)
		})
	}
}
