# calsvc: multi-stage build on slim Python 3.11; runs as a non-root user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md config.toml ./
COPY calsvc ./calsvc
COPY sql ./sql
RUN python -m venv /opt/calsvc && /opt/calsvc/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --system --create-home --home-dir /var/lib/calsvc calsvc
COPY --from=build /opt/calsvc /opt/calsvc
COPY config.toml /etc/calsvc/config.toml
ENV PATH=/opt/calsvc/bin:$PATH \
    CALSVC_CONFIG=/etc/calsvc/config.toml \
    CALSVC_SERVER_HOST=0.0.0.0 \
    CALSVC_SERVER_DATA_DIR=/var/lib/calsvc/data \
    PYTHONUNBUFFERED=1
USER calsvc
WORKDIR /var/lib/calsvc
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["calsvc"]
CMD ["serve"]
