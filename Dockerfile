# taxii-server under gunicorn, as the unprivileged user taxii, with the store on a volume.
# Mount config.yaml, collections/ and a data volume:
#   docker build -t taxii-server .
#   docker run -p 8000:8000 -v $PWD/config.yaml:/srv/config.yaml -v taxii-data:/srv/data taxii-server
# scripts/ci/docker-demo.sh builds it, runs the demo in it and checks it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 TAXII_CONFIG=/srv/config.yaml
WORKDIR /srv
RUN useradd --system --home /srv taxii

COPY pyproject.toml README.md ./
COPY taxii_server ./taxii_server
COPY schemas ./schemas
RUN pip install --no-cache-dir . && rm -rf taxii_server

COPY deploy ./deploy
COPY collections ./collections
COPY config.yaml scrubbing.yaml ./
RUN mkdir -p /srv/data && chown taxii /srv/data
USER taxii
VOLUME /srv/data
EXPOSE 8000

# Healthy when the store answers a query (GET /readyz, docs/operations.md). The image has no
# curl: Python asks. --start-period covers the first start, which creates the store.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]

# Workers are separate processes: the store, keys and cursors are shared through the
# database and the secret, never through process memory; serve keeps the workers' metrics
# in a folder of its own under /tmp. Logs are JSON lines on stderr, one per request. This
# serves plain HTTP for a TLS-terminating reverse proxy in front; to serve HTTPS directly,
# mount a certificate and add --tls-cert /srv/tls/cert.pem --tls-key /srv/tls/key.pem.
CMD ["taxii-server", "serve", "--config", "/srv/config.yaml", "--host", "0.0.0.0", "--port", "8000", \
     "--workers", "2", "--threads", "4", "--log-format", "json"]
