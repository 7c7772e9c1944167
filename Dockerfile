# Paseo Gateway container image (see docs/container.md).
#
#   podman build --format docker -t paseo-gateway .      (docker: docker build -t paseo-gateway .)
#
# Build arguments:
#   BASE_IMAGE         Debian-based image with python3 >= 3.11 and python3-venv (default the
#                      official python:3.11-slim); every stage uses it.
#   PASEO_CLI_VERSION  a published @getpaseo/cli version to bake in, with its own Node.js.
#                      Empty (the default) leaves the CLI and Node out: mount a CLI instead and
#                      point PASEO_GATEWAY_PASEO_BIN at it.
#   PASEO_CLI_PACKAGE  npm package of the CLI (default @getpaseo/cli; a fork or a tarball URL).
#   NODE_VERSION       Node.js for the CLI (22 LTS), from npm's node-linux-<arch> package (the
#                      official nodejs.org build), checked against the registry's sha512.
#   NPM_VERSION        npm used to install the CLI (build stage only, not in the image).
#   NPM_REGISTRY       npm registry (or mirror) for Node.js, npm and the CLI.
#
# Configuration is environment variables only (docs/configuration.md); the image adds
# PASEO_GATEWAY_LISTEN_HOST, PASEO_GATEWAY_LISTEN_PORT and PASEO_GATEWAY_WORKERS (0.0.0.0,
# 8000, 1) for `serve`. The server applies migrations at start (PASEO_GATEWAY_MIGRATE_ON_START).
ARG BASE_IMAGE=python:3.11-slim

# --- The gateway in a virtual environment ---------------------------------------------------
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
WORKDIR /src
# Dependencies first (their own layer: it is rebuilt only when pyproject.toml or
# constraints.txt changes), at the versions constraints.txt pins.
COPY pyproject.toml constraints.txt ./
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
 && /opt/venv/bin/pip install -c constraints.txt -r requirements.txt
COPY README.md alembic.ini ./
COPY alembic ./alembic
COPY app ./app
# The project itself, then pip out of the runtime venv (nothing installs at run time).
RUN /opt/venv/bin/pip install --no-deps . \
 && /opt/venv/bin/pip uninstall -y -q pip setuptools

# --- Optional: Node.js and the paseo CLI in /opt/paseo-cli ----------------------------------
FROM ${BASE_IMAGE} AS cli
ARG PASEO_CLI_VERSION=""
ARG PASEO_CLI_PACKAGE=@getpaseo/cli
ARG NODE_VERSION=22.23.3
ARG NPM_VERSION=10.9.9
ARG NPM_REGISTRY=https://registry.npmjs.org
# Node.js and npm come from the npm registry (the base has neither, and Debian bookworm's
# nodejs is 18): each tarball is checked against the registry's sha512 before it is unpacked.
# npm itself stays in this stage; the runtime image gets node, the CLI and its modules.
RUN mkdir -p /opt/paseo-cli/bin \
 && if [ -n "$PASEO_CLI_VERSION" ]; then \
      set -eu; \
      case "$(uname -m)" in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) arch="$(uname -m)" ;; esac; \
      for spec in "node-linux-$arch $NODE_VERSION /tmp/node" "npm $NPM_VERSION /tmp/npm"; do \
        set -- $spec; mkdir -p "$3"; \
        python3 -c 'import base64, hashlib, io, json, sys, tarfile, urllib.request as u; \
registry, name, version, dest = sys.argv[1:]; \
dist = json.load(u.urlopen(f"{registry}/{name}/{version}", timeout=60))["dist"]; \
data = u.urlopen(dist["tarball"], timeout=900).read(); \
algorithm, _, digest = dist["integrity"].partition("-"); \
assert algorithm == "sha512" and base64.b64decode(digest) == hashlib.sha512(data).digest(), name; \
safe = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}; \
tarfile.open(fileobj=io.BytesIO(data)).extractall(dest, **safe)' \
          "${NPM_REGISTRY%/}" "$1" "$2" "$3"; \
      done; \
      install -m 0755 /tmp/node/package/bin/node /opt/paseo-cli/bin/node; \
      PATH="/opt/paseo-cli/bin:$PATH" node /tmp/npm/package/bin/npm-cli.js install --global \
        --prefix /opt/paseo-cli --omit=dev --no-audit --no-fund --no-update-notifier \
        --registry "$NPM_REGISTRY" "${PASEO_CLI_PACKAGE}@${PASEO_CLI_VERSION}"; \
      rm -rf /tmp/node /tmp/npm /root/.npm; \
      PATH="/opt/paseo-cli/bin:$PATH" paseo --version; \
    fi

# --- The runtime image ----------------------------------------------------------------------
FROM ${BASE_IMAGE}
# tini as PID 1: forwards signals to the server and reaps orphaned paseo children, also when
# the container is started without --init.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tini \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && useradd --uid 10001 --user-group --create-home --home-dir /home/gateway --shell /usr/sbin/nologin gateway \
 && mkdir -p /data /srv/paseo-gateway \
 && chown gateway:gateway /data
COPY --from=cli /opt/paseo-cli /opt/paseo-cli
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:/opt/paseo-cli/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PASEO_GATEWAY_DATABASE_URL=sqlite+aiosqlite:////data/paseo-gateway.db \
    PASEO_GATEWAY_LISTEN_HOST=0.0.0.0 \
    PASEO_GATEWAY_LISTEN_PORT=8000 \
    PASEO_GATEWAY_WORKERS=1
# An empty working directory the server cannot write (no stray .env); data lives in /data.
WORKDIR /srv/paseo-gateway
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PASEO_GATEWAY_LISTEN_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["sh", "-c", "exec paseo-gateway serve --host \"$PASEO_GATEWAY_LISTEN_HOST\" --port \"$PASEO_GATEWAY_LISTEN_PORT\" --workers \"$PASEO_GATEWAY_WORKERS\""]
