package auth_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/auth"
)

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	past := time.Now().Add(-time.Minute)
	tok, k, err := auth.NewKey("ci", "acme", []string{auth.ScopeJobsRead, auth.ScopeJobsWrite + ":primes"}, nil)
	require.NoError(t, err)
	require.Regexp(t, `^jfk_ci\.[A-Za-z0-9_-]{43}$`, tok, "256-bit secret")
	require.NotContains(t, k.SHA256, tok)
	oldTok, old, err := auth.NewKey("old", "acme", auth.AllScopes, &past)
	require.NoError(t, err)
	dev := auth.HashedKey("any-operator-chosen-dev-key", "dev", "dev", auth.AllScopes)
	a, err := auth.New([]auth.Key{k, old, dev}, nil)
	require.NoError(t, err)

	tests := []struct {
		name, header string
		wantErr      string
		wantID       string
	}{
		{"valid", "Bearer " + tok, "", "key:ci"},
		{"scheme is case-insensitive", "bearer " + tok, "", "key:ci"},
		{"opaque dev key", "Bearer any-operator-chosen-dev-key", "", "key:dev"},
		{"missing", "", "CREDENTIALS_MISSING", ""},
		{"basic auth", "Basic Zm9vOmJhcg==", "CREDENTIALS_MALFORMED", ""},
		{"no token", "Bearer", "CREDENTIALS_MALFORMED", ""},
		{"wrong secret", "Bearer jfk_ci.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "CREDENTIALS_INVALID", ""},
		{"unknown id", "Bearer jfk_nobody.secret", "CREDENTIALS_INVALID", ""},
		{"no separator", "Bearer jfk_ci", "CREDENTIALS_INVALID", ""},
		{"expired", "Bearer " + oldTok, "CREDENTIALS_EXPIRED", ""},
		{"garbage", "Bearer a.b.c", "CREDENTIALS_INVALID", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := a.Authenticate(context.Background(), tt.header)
			if tt.wantErr != "" {
				var ae *auth.Error
				require.ErrorAs(t, err, &ae)
				require.Equal(t, tt.wantErr, ae.Reason)
				require.Nil(t, p)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantID, p.ID)
		})
	}

	p, err := a.Authenticate(context.Background(), "Bearer "+tok)
	require.NoError(t, err)
	require.Equal(t, "acme", p.Tenant)
	require.True(t, p.AllowsAny(auth.ScopeJobsWrite))
	require.False(t, p.Allows(auth.ScopeJobsWrite))
	require.True(t, p.AllowsType(auth.ScopeJobsWrite, "primes"))
	require.False(t, p.AllowsType(auth.ScopeJobsWrite, "report"))
	require.False(t, p.AllowsAny(auth.ScopeAdmin))
}

func TestLoadKeys(t *testing.T) {
	t.Parallel()
	_, k, err := auth.NewKey("svc", "acme", []string{auth.ScopeJobsRead}, nil)
	require.NoError(t, err)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	good := write("good.json", `{"keys":[{"id":"svc","tenant":"acme","scopes":["jobs.read"],"sha256":"`+k.SHA256+`","expires":"2999-01-01T00:00:00Z"}]}`)
	keys, err := auth.LoadKeys(good)
	require.NoError(t, err)
	require.Len(t, keys, 1)
	_, err = auth.New(keys, nil)
	require.NoError(t, err)

	for _, tt := range []struct{ name, content, want string }{
		{"unknown field", `{"keys":[],"extra":1}`, "unknown field"},
		{"no keys", `{"keys":[]}`, "no keys"},
		{"not json", `keys: []`, "parse api keys"},
	} {
		_, err := auth.LoadKeys(write(tt.name, tt.content))
		require.ErrorContains(t, err, tt.want, tt.name)
	}
	_, err = auth.LoadKeys(filepath.Join(dir, "missing.json"))
	require.Error(t, err)

	for _, tt := range []struct {
		name string
		key  auth.Key
		want string
	}{
		{"bad id", auth.Key{ID: "Bad ID", Tenant: "a", Scopes: []string{"jobs.read"}, SHA256: k.SHA256}, "api key id"},
		{"no tenant", auth.Key{ID: "a", Scopes: []string{"jobs.read"}, SHA256: k.SHA256}, "tenant"},
		{"short hash", auth.Key{ID: "a", Tenant: "a", Scopes: []string{"jobs.read"}, SHA256: "abc"}, "64 hex"},
		{"no scopes", auth.Key{ID: "a", Tenant: "a", SHA256: k.SHA256}, "no scopes"},
	} {
		_, err := auth.New([]auth.Key{tt.key}, nil)
		require.ErrorContains(t, err, tt.want, tt.name)
	}
	_, err = auth.New([]auth.Key{k, k}, nil)
	require.ErrorContains(t, err, "defined twice")
}
