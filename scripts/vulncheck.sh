#!/usr/bin/env bash
# Runs govulncheck (symbol-level: only vulnerable code the program can reach
# counts) against a local copy of the Go vulnerability database, so it needs
# nothing but the Go module proxy:
#   1. downloads the pinned golang.org/x/vulndb module, whose data/osv/*.json
#      are the database's OSV reports;
#   2. turns them into a v1 database (index/db.json, index/modules.json,
#      index/vulns.json, ID/<id>.json, each also gzipped) with x/vulndb's own
#      cmd/indexdb, cached per vulndb version in $CACHE (below);
#   3. runs the pinned govulncheck with -db file://<that database> on ./...
#      of the repo root (or on the arguments given, e.g. `-show verbose ./...`).
# Exits with govulncheck's status: 0 when clean, 3 when the code is affected
# by a vulnerability, anything else on an error.
#
# Bump VULNDB_VERSION (a pseudo-version of golang.org/x/vulndb; `go list -m
# golang.org/x/vulndb@latest` names the newest) to pick up new reports.
# The first run per version fetches cmd/indexdb's dependencies and builds the
# database (~1-2 min); later runs reuse it and only scan.
set -euo pipefail

: "${VULNDB_VERSION:=v0.0.0-20261105234957-e22db6528018}"
: "${GOVULNCHECK_VERSION:=v1.9.0}"
GO=${GO:-go}

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${JOBFORGE_VULNDB_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/jobforge-vulndb}
db="$cache/db-$VULNDB_VERSION"
mkdir -p "$cache/bin"

# Tools are fetched and built outside any module (so no go.mod or go.sum is
# touched) and without the caller's GOFLAGS (-mod=vendor makes
# `go install pkg@version` fail).
work=$(mktemp -d "$cache/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
gotool() { (cd "$work" && GOWORK=off GOFLAGS= "$GO" "$@"); }
govulncheck="$cache/bin/govulncheck-$GOVULNCHECK_VERSION-$(gotool env GOVERSION)"

if [ ! -f "$db/index/modules.json" ]; then
  echo "vulncheck: building the vulnerability database from golang.org/x/vulndb@$VULNDB_VERSION" >&2
  src=$(gotool mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  if [ -z "$src" ] || [ ! -d "$src/data/osv" ]; then
    echo "vulncheck: golang.org/x/vulndb@$VULNDB_VERSION has no data/osv" >&2
    exit 1
  fi
  gotool run "golang.org/x/vulndb/cmd/indexdb@$VULNDB_VERSION" -vulns "$src/data/osv" -out "$work/db"
  # The reports in the repository carry no "modified" time (the public
  # database stamps them at deploy time), so the index says 0001-01-01; stamp
  # it with the snapshot's commit time, which govulncheck prints as the
  # database's date.
  ts=$(sed -n 's/^v0\.0\.0-\([0-9]\{4\}\)\([0-9]\{2\}\)\([0-9]\{2\}\)\([0-9]\{2\}\)\([0-9]\{2\}\)\([0-9]\{2\}\)-.*/\1-\2-\3T\4:\5:\6Z/p' <<<"$VULNDB_VERSION")
  if [ -n "$ts" ]; then
    printf '{"modified":"%s"}' "$ts" >"$work/db/index/db.json"
    gzip -n -c "$work/db/index/db.json" >"$work/db/index/db.json.gz"
  fi
  # Publish atomically; a concurrent run that got there first wins.
  mv -T "$work/db" "$db" 2>/dev/null || true
  # Drop databases of other versions.
  find "$cache" -mindepth 1 -maxdepth 1 -type d -name 'db-*' ! -name "db-$VULNDB_VERSION" -exec rm -rf {} +
fi

if [ ! -x "$govulncheck" ]; then
  GOBIN="$work/bin" gotool install "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION"
  mv -f "$work/bin/govulncheck" "$govulncheck"
  find "$cache/bin" -mindepth 1 -maxdepth 1 -name 'govulncheck-*' ! -name "$(basename "$govulncheck")" -delete
fi

cd "$root"
if [ $# -eq 0 ]; then
  set -- ./...
fi
echo "vulncheck: govulncheck $GOVULNCHECK_VERSION, golang.org/x/vulndb@$VULNDB_VERSION ($(ls "$db/ID" | grep -c '\.json$') reports)" >&2
status=0
"$govulncheck" -db "file://$db" "$@" || status=$?
exit "$status"
