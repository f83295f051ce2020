package app

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/jobforge/jobforge/internal/auth"
)

// devKeyFile is where dev mode keeps its API key, relative to the working
// directory (`make run` runs in the repository root, where jobctl and the
// README's examples read it).
const devKeyFile = ".jobforge/dev-key"

// devKeySource says where the dev key came from, for the banner.
type devKeySource int

const (
	devKeyFromEnv devKeySource = iota // JOBFORGE_DEV_KEY
	devKeyReused                      // the key file of an earlier run
	devKeyCreated                     // generated now
)

// loadDevKey returns the dev mode API key: fromEnv (JOBFORGE_DEV_KEY) when
// set, else the key in path when it holds one, else a new key. Afterwards
// path holds the key in use, so a restart keeps it (a JF_KEY exported
// earlier stays valid) and jobctl, which reads the file, never sends a
// stale one. A file that cannot be written is reported as writeErr; the
// key is usable all the same.
func loadDevKey(path, fromEnv string) (key string, src devKeySource, writeErr error, err error) {
	key, src = strings.TrimSpace(fromEnv), devKeyFromEnv
	if key == "" {
		// A missing or unreadable file means no saved key.
		if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) != "" {
			return strings.TrimSpace(string(b)), devKeyReused, nil, nil
		}
		if key, _, err = auth.NewKey("dev", "dev", auth.AllScopes, nil); err != nil {
			return "", 0, nil, err
		}
		src = devKeyCreated
	}
	if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == key {
		return key, src, nil, nil
	}
	return key, src, writeFileAtomic(path, []byte(key+"\n")), nil
}

// writeFileAtomic writes a private file (0600, in a 0700 directory) that
// readers see either whole or not at all.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // a no-op after the rename
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
