# taxii-server under gunicorn. Mount config.yaml, collections/ and a data volume:
#   docker build -t taxii-server .
#   docker run -p 8000:8000 -v $PWD/config.yaml:/srv/config.yaml -v taxii-data:/srv/data taxii-server
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

# Workers are separate processes: the store, keys and cursors are shared through the
# database and the secret, never through process memory. This serves plain HTTP for a
# TLS-terminating reverse proxy in front; to serve HTTPS directly, mount a certificate and run
#   gunicorn -c deploy/gunicorn.tls.conf.py taxii_server.wsgi:app   (with TAXII_TLS_CERT, TAXII_TLS_KEY)
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4", \
     "--worker-class", "taxii_server.server.ClientCertificateWorker", "--no-control-socket", \
     "--access-logfile", "-", "--access-logformat", "%(h)s \"%(r)s\" %(s)s %(b)s %(L)ss", \
     "taxii_server.wsgi:app"]
