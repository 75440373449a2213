FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
COPY --from=build /src/target/release/packr /usr/local/bin/packr
ENV PACKR_LISTEN=0.0.0.0:4873 PACKR_DATA_DIR=/data
VOLUME /data
EXPOSE 4873
# Ready means the database and the blob store answer. bash's /dev/tcp stands in for an HTTP client the
# slim image lacks; the port follows PACKR_LISTEN.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PACKR_LISTEN##*:} && printf 'GET /-/health/ready HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["packr"]
CMD ["serve"]
