# Sourced by scripts/gen-proto.sh and scripts/buf.sh: sets proto_includes to
# the protoc -I flags for the third-party .proto files api/proto imports, from
# packages only (no network beyond the Go module proxy and the npm registry):
#   google/api/*, google/rpc/*  npm package google-proto-files (tools/package.json, pinned)
#   buf/validate/*              Go module github.com/bufbuild/protovalidate (PROTOVALIDATE_VERSION)
#   protoc-gen-openapiv2/*      Go module github.com/grpc-ecosystem/grpc-gateway/v2 (version from go.mod)
#   google/protobuf/*           protoc's own include directory
# Expects the working directory to be the repository root.
: "${PROTOVALIDATE_VERSION:=v1.2.2}"
if [ ! -d tools/node_modules/google-proto-files ]; then
  npm ci --prefix tools --no-audit --no-fund --loglevel=error >/dev/null
fi
proto_pv_dir=$(GOFLAGS=-mod=mod go mod download -json "github.com/bufbuild/protovalidate@${PROTOVALIDATE_VERSION}" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
proto_gw_dir=$(go list -m -f '{{.Dir}}' github.com/grpc-ecosystem/grpc-gateway/v2)
proto_includes=(
  -I "$(dirname "$(dirname "$(command -v protoc)")")/include"
  -I "$PWD/tools/node_modules/google-proto-files"
  -I "$proto_pv_dir/proto/protovalidate"
  -I "$proto_gw_dir"
)
