# calsvc: multi-stage build on slim Python 3.11; runs as a non-root user (uid 10001).
# Configured by environment (CALSVC_<SECTION>_<KEY>, see README.md); docs/deploy.md shows
# several instances behind a load balancer. tests/e2e/test_container.py lints this file
# (hadolint) and runs its build and start commands without Docker.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md config.toml ./
COPY calsvc ./calsvc
COPY sql ./sql
RUN python -m venv /opt/calsvc && /opt/calsvc/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN groupadd --system --gid 10001 calsvc \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /var/lib/calsvc calsvc \
    && install --directory --owner 10001 --group 10001 /var/lib/calsvc/data
COPY --from=build /opt/calsvc /opt/calsvc
COPY config.toml /etc/calsvc/config.toml
ENV PATH=/opt/calsvc/bin:$PATH \
    CALSVC_CONFIG=/etc/calsvc/config.toml \
    CALSVC_SERVER_HOST=0.0.0.0 \
    CALSVC_SERVER_PORT=8080 \
    CALSVC_SERVER_DATA_DIR=/var/lib/calsvc/data \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/calsvc
# the embedded PostgreSQL's files, when no CALSVC_DATABASE_URL is given (development only)
VOLUME ["/var/lib/calsvc/data"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('CALSVC_SERVER_PORT', '8080'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["calsvc"]
CMD ["serve"]
