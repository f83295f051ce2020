package app

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLoadDevKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		file    *string // content before the start; nil: no file
		env     string
		wantKey string // "" : a generated key
		wantSrc devKeySource
	}{
		{name: "first start generates and saves", wantSrc: devKeyCreated},
		{name: "later start reuses the saved key", file: ptr("jfk_dev.saved\n"), wantKey: "jfk_dev.saved", wantSrc: devKeyReused},
		{name: "empty file is replaced", file: ptr("\n"), wantSrc: devKeyCreated},
		{name: "JOBFORGE_DEV_KEY is used and saved", env: "from-env", wantKey: "from-env", wantSrc: devKeyFromEnv},
		{name: "JOBFORGE_DEV_KEY replaces a stale file", file: ptr("jfk_dev.stale\n"), env: "from-env", wantKey: "from-env", wantSrc: devKeyFromEnv},
		{name: "JOBFORGE_DEV_KEY equal to the file", file: ptr("from-env\n"), env: "from-env", wantKey: "from-env", wantSrc: devKeyFromEnv},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), ".jobforge", "dev-key")
			if tt.file != nil {
				require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
				require.NoError(t, os.WriteFile(path, []byte(*tt.file), 0o600))
			}
			key, src, writeErr, err := loadDevKey(path, tt.env)
			require.NoError(t, err)
			require.NoError(t, writeErr)
			require.Equal(t, tt.wantSrc, src)
			if tt.wantKey != "" {
				require.Equal(t, tt.wantKey, key)
			} else {
				require.Regexp(t, `^jfk_dev\.[A-Za-z0-9_-]{43}$`, key)
			}
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, key+"\n", string(b))
			info, err := os.Stat(path)
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "the key file is private")

			again, src, _, err := loadDevKey(path, "")
			require.NoError(t, err)
			require.Equal(t, key, again, "the next start without JOBFORGE_DEV_KEY keeps the key")
			require.Equal(t, devKeyReused, src)
		})
	}
	t.Run("unwritable directory still yields a key", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		blocker := filepath.Join(dir, ".jobforge")
		require.NoError(t, os.WriteFile(blocker, nil, 0o600)) // a file where the directory should be
		key, src, writeErr, err := loadDevKey(filepath.Join(blocker, "dev-key"), "")
		require.NoError(t, err)
		require.Error(t, writeErr)
		require.NotEmpty(t, key)
		require.Equal(t, devKeyCreated, src)
	})
}

func ptr(s string) *string { return &s }
