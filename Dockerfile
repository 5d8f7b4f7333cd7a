# syntax=docker/dockerfile:1
# The gateway's image, as deploy/k8s expects it: the package installed (not editable, no dev
# extras) in a venv, the models and a default config under /app, a numeric non-root user.
# No container engine runs in the test environment: tests/deploy/test_dockerfile.py checks
# this file against the manifests and the gateway's defaults (docs/deploy.md).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN /opt/venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim AS runtime
# The numeric user the manifests' securityContext runs as (runAsUser/runAsGroup 10001).
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin gateway
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
# Owned by root and read-only for the gateway: the pod's root filesystem is read-only too.
# The cluster mounts its routing ConfigMap over /app/config; card paths such as
# ../models/fraud-v1 resolve against that folder to /app/models.
COPY config/gateway.yaml ./config/gateway.yaml
COPY models ./models
# XDG_CACHE_HOME: onnxruntime writes a cache on import; /tmp is the pod's writable emptyDir.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    XDG_CACHE_HOME=/tmp/cache
USER 10001:10001
EXPOSE 8080
# For `docker run` (Kubernetes ignores it and uses the Deployment's probes). Liveness, not
# readiness: a container whose model servers are down is still healthy.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/v2/health/live', timeout=2).status != 200)"]
ENTRYPOINT ["gateway"]
# In a container the gateway listens beyond loopback.
CMD ["serve", "--config", "/app/config/gateway.yaml", "--host", "0.0.0.0", "--port", "8080"]
