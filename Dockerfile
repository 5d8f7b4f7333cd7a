# syntax=docker/dockerfile:1
# Mirrors the Makefile's install steps: a venv with the package installed, nothing else.

FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --quiet --upgrade pip
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN /opt/venv/bin/pip install --quiet .

FROM python:3.11-slim AS runtime
RUN useradd --system --uid 10001 --home-dir /app gateway
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --chown=gateway config/gateway.yaml ./config/gateway.yaml
COPY --chown=gateway models ./models
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    XDG_CACHE_HOME=/tmp/cache
USER gateway
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/v2/health/ready', timeout=2).status != 200)"
ENTRYPOINT ["gateway", "serve"]
# In a container the gateway must listen beyond loopback; point --config at a mounted file.
CMD ["--config", "config/gateway.yaml", "--host", "0.0.0.0", "--port", "8080"]
