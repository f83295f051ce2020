#!/usr/bin/env bash
# Renders the Kubernetes overlays under deploy/k8s/overlays into OUT (default
# out/k8s), one file per overlay: OUT/dev.yaml, OUT/production.yaml.
# kustomize is run at a pinned version through `go run`, so nothing needs
# installing; later kustomize releases need a newer Go than go.mod's.
set -euo pipefail

: "${KUSTOMIZE_VERSION:=v5.7.1}"

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-"$root/out/k8s"}
mkdir -p "$out"
out=$(cd "$out" && pwd)

cd "$root"
for dir in deploy/k8s/overlays/*/; do
  name=$(basename "$dir")
  go run "sigs.k8s.io/kustomize/kustomize/v5@${KUSTOMIZE_VERSION}" build "$dir" >"$out/$name.yaml"
  echo "$out/$name.yaml"
done
