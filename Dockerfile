# syntax=docker/dockerfile:1
# One image for every Helios process (docs/deploy.md). The pod's command picks the service:
#   helios serve gateway|bidder|auctioneer|profiles|api
#   dagster code-server start -m helios_pipeline.definitions -h 0.0.0.0 -p 4000
# Stage 1 builds the wheel (setup.py generates the gRPC stubs from proto/ during the build)
# and the wheels of every dependency; stage 2 installs them from that local directory
# only, so the final image has no compiler, no build tools and no source tree.
# tests/deploy/test_image.py checks this file offline (no Docker engine on the dev machines).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY proto/ proto/
COPY ingest_services/ ingest_services/
COPY helios_pipeline/ helios_pipeline/
COPY assets/ assets/
COPY sensors/ sensors/
# The project's wheel plus a wheel for every runtime dependency (binary wheels from the
# index where they exist), so the final stage installs offline with --no-index.
RUN pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
# MALLOC_ARENA_MAX: librdkafka and gRPC threads each get a glibc malloc arena; two bound
# the RSS (the value `helios up` gives its children). HELIOS_BIND_HOST: listen on the pod
# IP, not loopback. HELIOS_HOME: writable state under /tmp (an emptyDir in the chart: the
# root filesystem is read-only). Python writes no .pyc at run time (compiled at install).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MALLOC_ARENA_MAX=2 \
    HELIOS_BIND_HOST=0.0.0.0 \
    HELIOS_HOME=/tmp/helios \
    DAGSTER_HOME=/tmp/dagster
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels helios \
    && groupadd --system --gid 10001 helios \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
       --shell /usr/sbin/nologin helios
WORKDIR /tmp
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 8080 8090 9101 9102 9103 50051 4000
CMD ["helios", "serve", "gateway"]
