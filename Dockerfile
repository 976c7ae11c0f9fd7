# Builds the stockcart binary with no database (queries are checked against .sqlx/).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN SQLX_OFFLINE=true cargo build --release --locked

FROM debian:bookworm-slim
RUN useradd --system --no-create-home stockcart
COPY --from=build /src/target/release/stockcart /usr/local/bin/stockcart
USER stockcart
ENV STOCKCART_BIND=0.0.0.0:8080 STOCKCART_LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["stockcart"]
CMD ["serve"]
