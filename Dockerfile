# syntax=docker/dockerfile:1
#
# Flightdeck's production image: one static binary on a distroless base,
# running as an unprivileged user. It expects an external Postgres in
# DATABASE_URL (or DATABASE_URL_FILE); the embedded database, which needs
# PostgreSQL's own programs, is for trying Flightdeck on a workstation.
#
#   docker build -t flightdeck .

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that a change of code does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# The version printed by `flightdeck version` and at start comes from the
# repository's git metadata when the build context includes .git (a tag
# such as v1.4.0, or the commit); without it the binary reports "devel".
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/flightdeck ./cmd/server

# distroless/static carries CA certificates, /etc/passwd with the nonroot
# user (65532) and nothing else: no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/flightdeck /flightdeck
# Numeric, so that Kubernetes can verify runAsNonRoot against the image.
USER 65532:65532
ENV FLIGHTDECK_ADDR=:8080 \
    FLIGHTDECK_DEMO=off
EXPOSE 8080
# There is no shell or HTTP client in the image to run a HEALTHCHECK with:
# the orchestrator probes GET /healthz (alive) and GET /readyz (database
# reachable and migrated) instead.
ENTRYPOINT ["/flightdeck"]
CMD ["serve"]
