# syntax=docker/dockerfile:1
# The operator's image: `docker build -t flow-operator:0.1.0 .` (docs/operations.md).
#
# Two stages: `build` makes a virtualenv in /opt/venv from requirements.runtime.lock, the
# runtime dependencies plus pip and setuptools, every file checked against its sha256
# (--require-hashes), then builds and installs the package with that same setuptools (no
# build isolation, so nothing is fetched unhashed). The final stage copies only that
# virtualenv onto a fresh slim base, so no compiler, pip cache or source tree ships. It runs
# as a fixed non-root UID and writes nothing to its root filesystem (readOnlyRootFilesystem
# in the chart).
# The base is a tag here: pin it by digest in the release pipeline
# (--build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:..., docs/operations.md).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
RUN python -m venv /opt/venv
COPY requirements.runtime.lock pyproject.toml README.md ./
COPY operator/ operator/
# A file whose hash is not in the lock, or a dependency missing from it, fails the build.
RUN /opt/venv/bin/python -m pip install --no-cache-dir --require-hashes -r requirements.runtime.lock \
    && /opt/venv/bin/python -m pip install --no-cache-dir --no-deps --no-build-isolation . \
    && /opt/venv/bin/python -m pip uninstall --yes pip setuptools \
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
