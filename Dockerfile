FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
COPY --from=build /src/target/release/packr /usr/local/bin/packr
ENV PACKR_LISTEN=0.0.0.0:4873 PACKR_DATA_DIR=/data
VOLUME /data
EXPOSE 4873
ENTRYPOINT ["packr"]
CMD ["serve"]
