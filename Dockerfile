# cloudcloud in a container: a static binary on a distroless base, run as a
# non-root user, state in the /data volume.
#
#   docker build -t cloudcloud --build-arg VERSION=$(git describe --tags --always) .
#   docker run -d --name cloudcloud -p 8000:8000 -p 8080:8080 -v cloudcloud-data:/data cloudcloud
#   docker logs cloudcloud        # the generated UI password and lamp secret
#
# Multi-platform: docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 .

ARG GO_VERSION=1.26

# The build runs on the builder's own platform and cross-compiles, which is
# much faster than emulating an arm build.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
ARG TARGETVARIANT
# TARGETVARIANT is "v7" for linux/arm/v7; GOARM wants the bare "7".
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} GOARM=${TARGETVARIANT#v} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/cloudcloud ./cmd/cloudcloud \
 && mkdir -p /out/data

# distroless/static has CA certificates (for the weather API), time zones
# and a "nonroot" user (65532), but no shell and no curl.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/cloudcloud /usr/local/bin/cloudcloud
# An empty /data owned by the non-root user: a new named volume copies this
# ownership, so the server can write its state there.
COPY --from=build --chown=65532:65532 /out/data /data
ENV CLOUDCLOUD_STORAGE_DIR=/data
VOLUME ["/data"]
USER 65532:65532
# 8000: UI and API (web.listen). 8080: lamps (device.listen).
EXPOSE 8000 8080
# The image has no curl: the binary checks its own /healthz.
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/cloudcloud", "healthcheck", "-url", "http://127.0.0.1:8000/healthz"]
ENTRYPOINT ["/usr/local/bin/cloudcloud"]
CMD ["serve"]
