# Paseo Gateway container image.
#   docker build -t paseo-gateway .                      (no paseo CLI: mount one, or set PASEO_CLI_VERSION)
#   docker run --init -p 8000:8000 -e PASEO_GATEWAY_PASEO_HOST=host.docker.internal:6767 paseo-gateway
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /src
RUN python3 -m venv /opt/venv
COPY pyproject.toml README.md alembic.ini ./
COPY alembic ./alembic
COPY app ./app
RUN /opt/venv/bin/pip install --no-cache-dir .

FROM ${BASE_IMAGE}
# Set to a published @getpaseo/cli version to bake the CLI (and Node) into the image.
ARG PASEO_CLI_VERSION=""
RUN if [ -n "$PASEO_CLI_VERSION" ]; then \
      apt-get update && apt-get install -y --no-install-recommends nodejs npm \
      && npm install -g "@getpaseo/cli@${PASEO_CLI_VERSION}" \
      && apt-get purge -y npm && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*; \
    fi
COPY --from=build /opt/venv /opt/venv
RUN useradd --create-home --uid 10001 gateway && mkdir -p /data && chown gateway /data
USER gateway
WORKDIR /data
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PASEO_GATEWAY_DATABASE_URL=sqlite+aiosqlite:////data/paseo-gateway.db
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
  CMD python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
CMD ["paseo-gateway", "serve", "--host", "0.0.0.0", "--port", "8000"]
