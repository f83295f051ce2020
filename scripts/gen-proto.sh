#!/usr/bin/env bash
# Generates Go, gRPC, gateway and OpenAPI code from api/proto into OUT (default api/gen).
# Third-party .proto files come from packages (scripts/proto-includes.sh).
# Plugins are the pinned binaries in bin/ (see the Makefile's tools target).
# The OpenAPI document spells resource paths out (/v1/jobs/{job}, not
# /v1/{name=jobs/*}), so paths of different resources do not collide and
# `make lint-openapi` can hold it to Redocly's rules.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-"$root/api/gen"}
bin="$root/bin"

cd "$root"
# shellcheck source=scripts/proto-includes.sh
. scripts/proto-includes.sh

mkdir -p "$out/openapi"
protos=$(cd api/proto && find jobforge -name '*.proto' | sort)
(
  cd api/proto
  # shellcheck disable=SC2086
  protoc \
    -I . "${proto_includes[@]}" \
    --plugin=protoc-gen-go="$bin/protoc-gen-go" \
    --plugin=protoc-gen-go-grpc="$bin/protoc-gen-go-grpc" \
    --plugin=protoc-gen-grpc-gateway="$bin/protoc-gen-grpc-gateway" \
    --plugin=protoc-gen-openapiv2="$bin/protoc-gen-openapiv2" \
    --go_out="$out" --go_opt=paths=source_relative \
    --go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
    --grpc-gateway_out="$out" --grpc-gateway_opt=paths=source_relative \
    --openapiv2_out="$out/openapi" \
    --openapiv2_opt=allow_merge=true,merge_file_name=jobforge,disable_default_errors=false,enums_as_ints=false,expand_slashed_path_patterns=true \
    $protos
)
