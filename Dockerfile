# syntax=docker/dockerfile:1
# The operator's image: `docker build -t flow-operator:0.1.0 .` (docs/operations.md).
#
# Two stages: `build` makes a virtualenv in /opt/venv with the package and exactly the
# runtime versions pinned in requirements.lock (a constraints file: the dev tools it also
# pins are not installed); the final stage copies only that virtualenv onto a fresh slim
# base, so no compiler, pip cache or source tree ships. It runs as a fixed non-root UID
# and writes nothing to its root filesystem (readOnlyRootFilesystem in the chart).
# Pin the base by digest in your release pipeline (`python:3.11-slim-bookworm@sha256:...`).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
RUN python -m venv /opt/venv
COPY requirements.lock pyproject.toml README.md ./
COPY operator/ operator/
# The lock pins every runtime dependency; --constraint makes pip fail on any version drift.
RUN /opt/venv/bin/pip install --no-cache-dir --constraint requirements.lock . \
    && /opt/venv/bin/pip uninstall --yes pip \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="flow-operator" \
      org.opencontainers.image.description="Kubernetes operator for Workflows and FlowRuns" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
COPY --from=build /opt/venv /opt/venv
# A numeric UID so that the kubelet can check runAsNonRoot without /etc/passwd.
USER 65532:65532
# 8080: HTTP API, dashboard, /healthz, /readyz; 9090: Prometheus /metrics.
EXPOSE 8080 9090
ENTRYPOINT ["flow-operator"]
CMD ["run", "--all-namespaces"]
