# One image for every role of the engine: gateway, fast worker, stock worker, setup, and
# the flow-run Jobs of a Prefect Kubernetes work pool. Calrissian runs from its own image.
#
#   docker build -t oapip-prefect:0.1.0 .
#   docker run --rm oapip-prefect:0.1.0                      # lists the roles
#   docker run -e PREFECT_API_URL=http://prefect:4200/api oapip-prefect:0.1.0 setup
#   docker run -e PREFECT_API_URL=http://prefect:4200/api -p 8000:8000 oapip-prefect:0.1.0 gateway
#   docker run -e PREFECT_API_URL=http://prefect:4200/api oapip-prefect:0.1.0 worker
#   docker run -e PREFECT_API_URL=http://prefect:4200/api oapip-prefect:0.1.0 stock-worker
#   docker run -p 8000:8000 -e OAPIP_HOST=0.0.0.0 oapip-prefect:0.1.0 oapip up   # all in one
#
# Roles are in infrastructure/docker/entrypoint.sh; any other command runs as given, which
# is how Prefect's Kubernetes work pool starts flow runs in this image (`args` only).
# Settings come from the environment (core/settings/; PREFECT_API_URL, OAPIP_*).
# Linted with hadolint in the tests (tests/infrastructure/test_dockerfile.py).

# --- build: the engine and its pinned dependencies (pyproject.toml) in a virtualenv ------
FROM python:3.11.14-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/oapip
COPY pyproject.toml README.md /src/
COPY core /src/core
COPY cwlpkg /src/cwlpkg
COPY blocks /src/blocks
COPY ogc_prefect /src/ogc_prefect
COPY flows /src/flows
COPY worker /src/worker
COPY api_gateway /src/api_gateway
COPY stack /src/stack
RUN /opt/oapip/bin/pip install --no-compile /src

# --- run: the virtualenv, node for CWL expressions, tini as PID 1 -------------------------
FROM python:3.11.14-slim-bookworm

# nodejs: cwltool evaluates CWL expressions (InlineJavascriptRequirement) with it.
# tini: PID 1 that forwards signals and reaps the tools orphaned by cancelled jobs.
# Versions are bookworm's (nodejs from bookworm-security).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        nodejs=18.20.4+dfsg-1~deb12u3 \
        tini=0.19.0-1+b3 \
    && rm -rf /var/lib/apt/lists/*

COPY --from=build /opt/oapip /opt/oapip
COPY infrastructure/docker/entrypoint.sh /usr/local/bin/oapip-entrypoint

ENV PATH=/opt/oapip/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DO_NOT_TRACK=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    OAPIP_HOME=/var/lib/oapip

# A fixed numeric uid/gid (10001) so Kubernetes can check runAsNonRoot.
RUN groupadd --gid 10001 oapip \
    && useradd --uid 10001 --gid 10001 --create-home oapip \
    && install -d -o 10001 -g 10001 /var/lib/oapip
USER 10001:10001
WORKDIR /var/lib/oapip

EXPOSE 8000
ENTRYPOINT ["tini", "--", "oapip-entrypoint"]
CMD ["help"]
