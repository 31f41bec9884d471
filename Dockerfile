# Multi-stage build: compile with the official Rust image, run on slim Debian as an unprivileged user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY .cargo ./.cargo
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin iocmatch

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/iocmatch --create-home iocmatch
COPY --from=build /src/target/release/iocmatch /usr/local/bin/iocmatch
USER iocmatch
WORKDIR /var/lib/iocmatch
EXPOSE 9464
ENTRYPOINT ["iocmatch"]
CMD ["run", "--config", "/etc/iocmatch/iocmatch.toml"]
