# syntax=docker/dockerfile:1
# One image for the three services (and the development broker); compose.yaml
# picks the binary with `command`.

FROM rust:1.95-bookworm AS build
# librdkafka is built with the system's OpenSSL (rdkafka's `ssl` feature):
# its headers to build, libssl3 in the runtime stage below.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Dependencies first, in their own layer: only a manifest change rebuilds them.
COPY Cargo.toml Cargo.lock ./
COPY domain/Cargo.toml domain/
COPY platform/Cargo.toml platform/
COPY test-support/Cargo.toml test-support/
COPY producer/Cargo.toml producer/
COPY consumer/Cargo.toml consumer/
COPY model-service/Cargo.toml model-service/
COPY system-tests/Cargo.toml system-tests/
COPY cli/Cargo.toml cli/
RUN for crate in domain platform test-support producer consumer model-service system-tests cli; do \
      mkdir -p "$crate/src" && touch "$crate/src/lib.rs" && echo 'fn main() {}' > "$crate/src/main.rs"; \
    done \
    && cargo build --release --locked -p producer -p consumer -p model-service \
    && rm -rf domain/src platform/src test-support/src producer/src consumer/src model-service/src system-tests/src cli/src
# Then the sources.
COPY . .
RUN touch domain/src/lib.rs platform/src/lib.rs producer/src/lib.rs consumer/src/lib.rs model-service/src/lib.rs \
    && cargo build --release --locked --bin producer --bin consumer --bin model-service --bin dev-broker

FROM debian:bookworm-slim
# libssl3: what the binaries link for Kafka's TLS; ca-certificates: the
# public CAs a managed Kafka's certificate chains to (librdkafka's default
# when no ssl.ca.location is set). system-tests/tests/system/deploy.rs checks that
# every library the binaries link is here.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl libssl3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=build /app/target/release/producer /app/target/release/consumer \
     /app/target/release/model-service /app/target/release/dev-broker /usr/local/bin/
COPY config ./config
USER app
