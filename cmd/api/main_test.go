package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// syncBuffer is a bytes.Buffer safe for the program's writes and the
// test's reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var (
	bannerKey  = regexp.MustCompile(`export JF_KEY=(\S+)`)
	bannerREST = regexp.MustCompile(`REST: +(http://\S+)`)
)

// startDev runs `api -dev` (embedded store) in the working directory with
// env as its whole environment until its banner is printed, checks that
// the banner's key works over REST, stops it, and returns the banner.
func startDev(t *testing.T, env map[string]string) (banner, key string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan error, 1)
	args := []string{"-dev", "-grpc-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0"}
	go func() { done <- run(ctx, args, func(k string) string { return env[k] }, out, io.Discard) }()
	redistest.Eventually(t, 30*time.Second, func() bool { return regexp.MustCompile(`(?m)^  admin:`).MatchString(out.String()) },
		"the dev banner is printed")
	banner = out.String()
	m := bannerKey.FindStringSubmatch(banner)
	require.NotNil(t, m, banner)
	key = m[1]
	req, err := http.NewRequest(http.MethodGet, bannerREST.FindStringSubmatch(banner)[1]+"/v1/jobTypes", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "the banner's key works")
	http.DefaultClient.CloseIdleConnections()
	cancel()
	require.NoError(t, <-done)
	return banner, key
}

// TestDevKeyAcrossRestarts: the dev key survives restarts (a JF_KEY
// exported earlier stays valid); JOBFORGE_DEV_KEY wins and is written to
// .jobforge/dev-key, so jobctl never reads a stale key; the banner says how
// to use the key with curl, grpcurl, jobctl and the queue UI.
func TestDevKeyAcrossRestarts(t *testing.T) {
	t.Chdir(t.TempDir()) // the key file is relative to the working directory
	savedKey := func() string {
		b, err := os.ReadFile(".jobforge/dev-key")
		require.NoError(t, err)
		return string(bytes.TrimSpace(b))
	}

	banner, first := startDev(t, nil)
	require.Contains(t, banner, "(new;")
	require.Equal(t, first, savedKey())
	for _, want := range []string{
		`curl -s -H "Authorization: Bearer $JF_KEY" http://`,
		`grpcurl -plaintext -H "authorization: Bearer $JF_KEY" 127.0.0.1:`,
		`jobctl --addr 127.0.0.1:`,
		"(log in with any user name and the key as password)",
	} {
		require.Contains(t, banner, want)
	}

	banner, second := startDev(t, nil)
	require.Equal(t, first, second, "a restart keeps the key")
	require.Contains(t, banner, "(kept from the last run;")

	banner, fromEnv := startDev(t, map[string]string{"JOBFORGE_DEV_KEY": "operator-chosen-dev-key"})
	require.Equal(t, "operator-chosen-dev-key", fromEnv)
	require.Contains(t, banner, "(JOBFORGE_DEV_KEY;")
	require.Equal(t, fromEnv, savedKey(), "the file holds the key in use")

	_, after := startDev(t, nil)
	require.Equal(t, fromEnv, after, "and later starts keep using it")
}
