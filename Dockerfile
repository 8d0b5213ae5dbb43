# Production image: gunicorn serving bridge.wsgi:app as a non-root user.
# BASE: any image with Python 3.11+ as `python` (with pip) on the PATH, like the official one; CI
# builds it from a Debian base it makes itself (docs/decisions/0015-container-image-in-ci.md).
ARG BASE=python:3.11-slim-bookworm

# Build stage: wheels for the project and its dependencies (binary lxml and xmlsec, which must
# share one libxml2; binary google-re2, which would otherwise need RE2 and a C++ compiler).
FROM ${BASE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bridge ./bridge
RUN python -m pip wheel --no-cache-dir --only-binary lxml,xmlsec,google-re2 --wheel-dir /wheels .

# Runtime stage: no compilers, no build files; exactly the wheels built above, no extras.
# The working directory is root's and read-only to the app user, whatever the root filesystem:
# gunicorn puts it first on sys.path (a planted bridge/ there would shadow the installed
# package), and idp_metadata/ in it is trusted configuration. The app user writes only the
# metrics directory and /tmp.
FROM ${BASE}
RUN useradd --system --uid 10001 --home-dir /srv/bridge --no-create-home bridge \
 && mkdir -p /srv/bridge/metrics /srv/bridge/idp_metadata \
 && chown root:root /srv/bridge /srv/bridge/idp_metadata && chmod 0755 /srv/bridge /srv/bridge/idp_metadata \
 && chown 10001 /srv/bridge/metrics
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
WORKDIR /srv/bridge
USER 10001
ENV BRIDGE_ENV=production \
    BRIDGE_INSTANCE_DIR=/srv/bridge/instance \
    BRIDGE_IDP_METADATA_DIR=/srv/bridge/idp_metadata \
    PROMETHEUS_MULTIPROC_DIR=/srv/bridge/metrics \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
EXPOSE 8000
# /healthz on the port gunicorn binds (BRIDGE_BIND, as bridge/gunicorn_conf.py reads it).
HEALTHCHECK --interval=30s --timeout=3s CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('BRIDGE_BIND', '0.0.0.0:8000').rpartition(':')[2]; sys.exit(urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2).status != 200)"]
# Run `bridge db upgrade` once per release (a migration job) before starting new pods.
CMD ["gunicorn", "-c", "python:bridge.gunicorn_conf", "bridge.wsgi:app"]
