# Production image: gunicorn serving bridge.wsgi:app as a non-root user.
# Build stage: wheels for the project and its dependencies (binary lxml and xmlsec, which must
# share one libxml2; binary google-re2, which would otherwise need RE2 and a C++ compiler).
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bridge ./bridge
RUN python -m pip install --no-cache-dir --upgrade pip \
 && python -m pip wheel --no-cache-dir --only-binary lxml,xmlsec,google-re2 --wheel-dir /wheels .

# Runtime stage: no compilers, no build files.
FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --home-dir /srv/bridge --create-home bridge \
 && mkdir -p /srv/bridge/metrics && chown bridge /srv/bridge/metrics
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
WORKDIR /srv/bridge
USER bridge
ENV BRIDGE_ENV=production \
    BRIDGE_INSTANCE_DIR=/srv/bridge/instance \
    BRIDGE_IDP_METADATA_DIR=/srv/bridge/idp_metadata \
    PROMETHEUS_MULTIPROC_DIR=/srv/bridge/metrics \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"
# Run `bridge db upgrade` once per release (a migration job) before starting new pods.
CMD ["gunicorn", "-c", "python:bridge.gunicorn_conf", "bridge.wsgi:app"]
