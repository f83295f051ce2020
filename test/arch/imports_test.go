// Package arch_test enforces the layering rules of the code base.
package arch_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Only the queue/store layer talks to Redis: API handlers, job types and
// commands never import asynq or go-redis.
func TestOnlyQueueImportsRedisLibraries(t *testing.T) {
	t.Parallel()
	restricted := []string{"github.com/hibiken/asynq", "github.com/redis/go-redis"}
	allowed := []string{
		"internal/queue/",
		// The benchmark suite runs raw asynq (client and server) next to
		// jobforge as its baseline, and reads Redis's command counters.
		"cmd/loadgen/",
	}
	root := filepath.Join("..", "..")
	var offenders []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || rel == "bin" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		for _, a := range allowed {
			if strings.HasPrefix(filepath.ToSlash(rel), a) {
				return nil
			}
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			for _, r := range restricted {
				if strings.HasPrefix(p, r) {
					offenders = append(offenders, rel+" imports "+p)
				}
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.Empty(t, offenders, "only internal/queue (and the cmd/loadgen benchmark) may import asynq or go-redis")
}

// The API is served through the storage seam (internal/store) and never
// depends on its Redis implementation, so a backend can be swapped without
// touching a handler. Its tests may build a Redis-backed stack.
func TestAPIDependsOnStoreNotQueue(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "..", "internal", "api")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var offenders []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(dir, name), nil, parser.ImportsOnly)
		require.NoError(t, err)
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "github.com/jobforge/jobforge/internal/queue" {
				offenders = append(offenders, "internal/api/"+name)
			}
		}
	}
	require.Empty(t, offenders, "internal/api depends on internal/store; only internal/app wires in internal/queue")
}

// The API validates jobs against the catalogue that workers publish: its
// binary must not contain job code, or a new job type would need a new API.
func TestAPIBinaryHasNoJobCode(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"./cmd/api"} {
		out, err := exec.Command("go", "list", "-deps", "-test=false", "../../"+cmd).Output()
		require.NoError(t, err)
		deps := strings.Fields(string(out))
		require.Contains(t, deps, "github.com/jobforge/jobforge/internal/api", "the import graph was read")
		for _, d := range deps {
			require.NotEqual(t, "github.com/jobforge/jobforge/jobs/builtin", d, "%s imports the built-in job types", cmd)
			require.False(t, strings.HasPrefix(d, "github.com/jobforge/jobforge/examples"), "%s imports %s", cmd, d)
		}
	}
	out, err := exec.Command("go", "list", "-deps", "../../cmd/worker").Output()
	require.NoError(t, err)
	require.Contains(t, strings.Fields(string(out)), "github.com/jobforge/jobforge/jobs/builtin",
		"the check above can fail: the worker does import the built-in types")
}
