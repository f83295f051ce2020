package app

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jobforge/jobforge/internal/auth"
)

// KeyGen implements `api keygen`: it creates an API key and prints the
// token (to hand to the client, shown once) and the entry to add to the
// API keys file (which stores only the token's SHA-256).
func KeyGen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("api keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	id := fs.String("id", "", "key id: lowercase letters, digits and - (required)")
	tenant := fs.String("tenant", "", "tenant the key acts for (required)")
	scopes := fs.String("scopes", "jobs.read,jobs.write,jobs.cancel", "comma-separated scopes: jobs.read, jobs.write, jobs.cancel, admin, worker (the worker protocol); jobs.write:<type> limits writes to one job type")
	expires := fs.String("expires", "", "optional expiry, RFC 3339")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var exp *time.Time
	if *expires != "" {
		t, err := time.Parse(time.RFC3339, *expires)
		if err != nil {
			return fmt.Errorf("-expires: %w", err)
		}
		exp = &t
	}
	var list []string
	for _, s := range strings.Split(*scopes, ",") {
		if s = strings.TrimSpace(s); s != "" {
			list = append(list, s)
		}
	}
	token, key, err := auth.NewKey(*id, *tenant, list, exp)
	if err != nil {
		return err
	}
	entry, err := json.MarshalIndent(key, "    ", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "token (give it to the client; it is not stored anywhere):\n  %s\n\n", token)
	fmt.Fprintf(stdout, "entry for the API keys file {\"keys\": [...]}:\n    %s\n", entry)
	return nil
}
