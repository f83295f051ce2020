#!/usr/bin/env bash
# buf lint and buf breaking for api/proto, offline.
#
#   scripts/buf.sh lint              buf lint (buf.yaml: STANDARD, exceptions justified there)
#   scripts/buf.sh breaking [REF]    buf breaking of the working tree against REF
#
# buf cannot fetch the third-party .proto files from the BSR here, so both
# commands work on images that protoc builds (--include_imports
# --include_source_info) from the packages code generation uses
# (scripts/proto-includes.sh), and restrict buf to our own files (--path).
#
# What `breaking` compares against, when REF is not given (BUF_BREAKING_AGAINST
# may name it too):
#   - on a branch other than main: the merge-base with main, so every change
#     the branch would bring to main is checked at once;
#   - on main itself (a clean clone in CI, or working on main): the commit
#     before HEAD, so the newest commit plus any uncommitted change is checked.
#     Comparing against main would compare HEAD with itself. A breaking change
#     therefore fails the check in the commit that makes it; a series of
#     commits landed together on main is checked for its last commit only
#     unless REF names where the series started (e.g. the main it was based on).
# Nothing to compare (no earlier commit, or no api/proto there) passes.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
buf="$root/bin/buf"
# shellcheck source=scripts/proto-includes.sh
. scripts/proto-includes.sh

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# image DIR OUT builds the image of the .proto files under DIR/jobforge.
image() {
  (
    cd "$1"
    # shellcheck disable=SC2046
    protoc -I . "${proto_includes[@]}" --include_imports --include_source_info \
      --descriptor_set_out="$2" $(find jobforge -name '*.proto' | sort)
  )
}

against() {
  local ref=${1:-${BUF_BREAKING_AGAINST:-}}
  if [ -n "$ref" ]; then
    git rev-parse --verify --quiet "$ref^{commit}" || { echo "buf breaking: unknown revision $ref" >&2; return 1; }
    return
  fi
  local branch
  branch=$(git symbolic-ref --quiet --short HEAD || true)
  if [ "$branch" != main ] && git rev-parse --verify --quiet main >/dev/null; then
    git merge-base HEAD main
  else
    git rev-parse --verify --quiet 'HEAD^' || true
  fi
}

case "${1:-}" in
lint)
  image api/proto "$tmp/image.binpb"
  "$buf" lint "$tmp/image.binpb" --config buf.yaml --path jobforge
  echo "buf lint: ok"
  ;;
breaking)
  base=$(against "${2:-}")
  if [ -z "$base" ]; then
    echo "buf breaking: no earlier commit to compare with"
    exit 0
  fi
  mkdir -p "$tmp/base"
  if ! git archive "$base" api/proto 2>/dev/null | tar -x -C "$tmp/base"; then
    echo "buf breaking: $(git rev-parse --short "$base") has no api/proto"
    exit 0
  fi
  image api/proto "$tmp/image.binpb"
  image "$tmp/base/api/proto" "$tmp/base.binpb"
  "$buf" breaking "$tmp/image.binpb" --against "$tmp/base.binpb" --config buf.yaml --path jobforge
  echo "buf breaking: no breaking change against $(git rev-parse --short "$base")"
  ;;
*)
  echo "usage: $0 lint | breaking [REF]" >&2
  exit 2
  ;;
esac
