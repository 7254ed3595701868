# doa's images, from one file (docker-compose.yml builds both):
#   app    doa and its dependencies in /opt/venv, the project's topologies and schemas in /app,
#          run as a non-root user; the entrypoint is `doa`.
#   kafka  app plus a Java 17 runtime and Apache Kafka assembled by doa (doa.local.apache_kafka,
#          jars from Maven Central at build time): one KRaft node for the compose network,
#          listening on 0.0.0.0:9092 and advertised as kafka:9092. For demos and tests: point
#          production deployments at your own Kafka cluster instead.
# BASE_IMAGE is any Debian bookworm image with python3 and python3-venv (CI passes one it made
# with mmdebstrap, since it cannot pull images).
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
# The dependencies first, from pyproject.toml and an empty package (a layer that survives
# code changes; README.md, pyproject's readme, is left empty to keep its edits out of the key).
COPY pyproject.toml /stub/
RUN mkdir /stub/doa && touch /stub/doa/__init__.py /stub/README.md \
    && /opt/venv/bin/pip install --quiet "/stub[ui,metrics]" \
    && /opt/venv/bin/pip uninstall --quiet --yes doa && rm -rf /stub
COPY pyproject.toml /src/
COPY doa /src/doa
RUN touch /src/README.md && /opt/venv/bin/pip install --quiet --no-deps /src

FROM ${BASE_IMAGE} AS app
RUN useradd --system --uid 10001 --create-home --home-dir /home/doa --shell /usr/sbin/nologin doa \
    && mkdir -p /var/cache/numba && chown doa /var/cache/numba
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY topologies /app/topologies
COPY schemas /app/schemas
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 NUMBA_CACHE_DIR=/var/cache/numba
USER doa
ENTRYPOINT ["doa"]
CMD ["--help"]

FROM app AS jre
USER root
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
       openjdk-17-jre-headless >/dev/null \
    && rm -rf /var/lib/apt/lists/*

FROM jre AS kafka-build
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends maven \
       >/dev/null
ENV DOA_KAFKA_CACHE=/opt/kafka
RUN python -c 'from doa.local.apache_kafka import assemble; print(assemble().root)' \
    && rm -rf /opt/kafka/*/libs.partial /root/.m2 && chmod -R a+rX /opt/kafka

FROM jre AS kafka
COPY --from=kafka-build /opt/kafka /opt/kafka
ENV DOA_KAFKA_CACHE=/opt/kafka
# the logs stay in the container: a restart of it (docker kill, docker start) keeps the streams
RUN mkdir -p /var/lib/doa-kafka && chown doa /var/lib/doa-kafka
USER doa
EXPOSE 9092
HEALTHCHECK --interval=2s --timeout=3s --start-period=60s --retries=30 \
    CMD ["python", "-c", "from doa.local.embedded import api_versions; api_versions('127.0.0.1:9092')"]
ENTRYPOINT ["doa", "broker", "--kafka", "--port", "9092", "--listen", "0.0.0.0", \
            "--advertise", "kafka:9092", "--data", "/var/lib/doa-kafka"]
