# Build and run image for the Trialog programs (used by docker-compose.yml).
FROM debian:12 AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config librdkafka-dev libavro-dev libmicrohttpd-dev \
      libcmocka-dev libpq-dev libjansson-dev libcurl4-openssl-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build /build -j"$(nproc)" \
      --target trialog-gateway trialog-projector trialog-cli

FROM debian:12
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librdkafka1 libavro23 libmicrohttpd12 libpq5 libjansson4 libssl3 curl ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /build/trialog-gateway /build/trialog-projector \
     /build/trialog /usr/local/bin/
USER nobody
