// Package arch_test enforces the layering rules of the code base.
package arch_test

import (
	"go/parser"
	"go/token"
	"io/fs"
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
