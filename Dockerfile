# Build: docker build -t reaper .   Run: docker run --rm reaper --help
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked --bin reaper

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 reaper \
    && mkdir /data && chown reaper /data
COPY --from=build /src/target/release/reaper /usr/local/bin/reaper
USER reaper
WORKDIR /data
ENTRYPOINT ["reaper"]
CMD ["run"]
