package arch_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// The api and the worker are built with one profile (make pgo): both copies
// are the same file, and it holds samples of both programs' hot paths — a
// profile taken from one program only would leave the other unoptimised
// without anything failing.
func TestPGOProfileCoversBothPrograms(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	api, err := os.ReadFile(filepath.Join(root, "cmd", "api", "default.pgo"))
	require.NoError(t, err)
	worker, err := os.ReadFile(filepath.Join(root, "cmd", "worker", "default.pgo"))
	require.NoError(t, err)
	require.True(t, bytes.Equal(api, worker), "cmd/api/default.pgo and cmd/worker/default.pgo differ: run make pgo")

	zr, err := gzip.NewReader(bytes.NewReader(api)) // a pprof profile is gzipped protobuf
	require.NoError(t, err, "default.pgo is not a CPU profile")
	raw, err := io.ReadAll(zr)
	require.NoError(t, err)
	for _, fn := range []string{
		"github.com/jobforge/jobforge/internal/api.(*Service).CreateJob",       // B1, B2
		"github.com/jobforge/jobforge/internal/api.(*Service).BatchCreateJobs", // B3
		"github.com/jobforge/jobforge/internal/queue.(*Worker).process",        // B5
	} {
		require.True(t, bytes.Contains(raw, []byte(fn)), "default.pgo has no samples in %s: run make pgo", fn)
	}
}
