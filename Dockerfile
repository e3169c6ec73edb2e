# One image for every role of the engine: gateway, fast worker, stock worker, setup.
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
# Settings come from the environment (engine/settings.py; PREFECT_API_URL, OAPIP_*).
FROM python:3.11-slim

# nodejs: cwltool evaluates CWL expressions (InlineJavascriptRequirement) with it.
# tini: PID 1 that forwards signals and reaps the tools orphaned by cancelled jobs.
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs tini \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DO_NOT_TRACK=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    OAPIP_HOME=/var/lib/oapip

# Every version is pinned in pyproject.toml.
COPY . /tmp/src
RUN pip install --no-cache-dir /tmp/src \
    && install -m 0755 /tmp/src/infrastructure/docker/entrypoint.sh /usr/local/bin/oapip-entrypoint \
    && rm -rf /tmp/src

RUN useradd --create-home --uid 10001 --user-group oapip \
    && install -d -o oapip -g oapip /var/lib/oapip
USER oapip
WORKDIR /var/lib/oapip

EXPOSE 8000
ENTRYPOINT ["tini", "--", "oapip-entrypoint"]
CMD ["help"]
