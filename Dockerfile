# syntax=docker/dockerfile:1
#
# One image with both programs: /api (the default entrypoint) and /worker.
# Kubernetes picks the program with `command:`; see deploy/k8s.
#
#   docker build --build-arg VERSION=v0.1.0 -t jobforge:v0.1.0 .
#   docker run --rm -p 8080:8080 -p 9090:9090 jobforge:v0.1.0 -dev
#   docker run --rm --entrypoint /worker -e REDIS_URL=redis://host:6379/0 jobforge:v0.1.0

# Keep in step with the go directive in go.mod.
ARG GO_VERSION=1.26.11

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# Static binaries: no libc needed at run time. main.version is stamped if a
# command declares it; otherwise -X is a no-op. Profile-guided, with the one
# profile both commands carry (see `make pgo` in the Makefile).
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -pgo=cmd/api/default.pgo -ldflags "-s -w -X main.version=${VERSION}" -o /out/ ./cmd/api ./cmd/worker
# scratch has no user database; name the non-root user the image runs as.
RUN mkdir -p /out/etc && \
    echo 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' > /out/etc/passwd && \
    echo 'nonroot:x:65532:' > /out/etc/group

FROM scratch
ARG VERSION=dev
LABEL org.opencontainers.image.title="jobforge" \
      org.opencontainers.image.description="Background job service: gRPC+REST API and workers on Redis" \
      org.opencontainers.image.version="${VERSION}"
# CA roots for rediss:// (TLS) connections.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/etc/passwd /out/etc/group /etc/
COPY --from=build /out/api /out/worker /
USER 65532:65532
# api: 8080 REST gateway + health, 9090 gRPC. worker: 8081 admin (health, metrics).
EXPOSE 8080 9090 8081
ENTRYPOINT ["/api"]
