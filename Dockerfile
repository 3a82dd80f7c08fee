# One image for both programs: `agentgw-controller` (the chart's Deployment) and `agentgw-proxy`
# (the proxy Deployments the controller creates). Dependencies are pinned by requirements.lock.
#
#   docker build -t ghcr.io/agentgw/agentgw:dev .
#
# Not built in this repository's CI (no container runtime on the CI machine); hack/kind-e2e.sh
# builds it and loads it into kind on hosts with Docker.

FROM python:3.11-slim AS build
# gcc for mypyc: the request path is compiled (dataplane/accel.py) in a throw-away venv with the
# dev tools, then installed with the runtime dependencies only (the extensions are package data).
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml requirements.lock README.md ./
COPY api ./api
COPY controller ./controller
COPY dataplane ./dataplane
COPY hack/accel.py ./hack/accel.py
RUN python -m venv /opt/build \
 && /opt/build/bin/pip install --no-cache-dir -c requirements.lock -e '.[dev]' \
 && /opt/build/bin/python hack/accel.py build \
 && /opt/build/bin/python hack/accel.py status | grep -qx compiled
RUN python -m venv /opt/agentgw \
 && /opt/agentgw/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/agentgw/bin/pip install --no-cache-dir -c requirements.lock . \
 && /opt/agentgw/bin/pip check \
 && cd / && /opt/agentgw/bin/python -c "from dataplane import accel; assert accel.STATE == 'compiled', accel.STATE"

FROM python:3.11-slim
COPY --from=build /opt/agentgw /opt/agentgw
ENV PATH=/opt/agentgw/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The uid the chart and the deployer run as (runAsNonRoot).
RUN groupadd --gid 10101 agentgw \
 && useradd --uid 10101 --gid 10101 --no-create-home --shell /usr/sbin/nologin agentgw
USER 10101
# Proxy: traffic ports come from the config; admin 15000 (localhost), stats 15020, readiness 15021.
# Controller: xDS 9978, metrics 9092.
EXPOSE 15020 15021 9978 9092
CMD ["agentgw-proxy", "--help"]
