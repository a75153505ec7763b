"""gunicorn configuration for serving HTTPS directly (TAXII 2.1 §8.2.2):

    TAXII_CONFIG=/etc/taxii/config.yaml TAXII_TLS_CERT=/etc/taxii/tls/cert.pem \
    TAXII_TLS_KEY=/etc/taxii/tls/key.pem gunicorn -c deploy/gunicorn.tls.conf.py 'taxii_server.wsgi:app'

TLS 1.2 is the minimum and TLS 1.3 0-RTT is never accepted (taxii_server/tls.py).

Environment:
  TAXII_TLS_CERT       certificate chain, PEM (required)
  TAXII_TLS_KEY        its private key, PEM (required)
  TAXII_TLS_CLIENT_CA  optional, mutual TLS: ask clients for a certificate issued by one of
                       these CAs or listed in the file itself; clients without one still use
                       API keys. Register each operator's certificate: taxii-server certs register.
  TAXII_BIND           listen address (default 0.0.0.0:8443)
  TAXII_WORKERS        worker processes (default 4); TAXII_THREADS threads each (default 4)
  TAXII_LOG_FORMAT     text (default) or json: the application's log lines (one per request)
  PROMETHEUS_MULTIPROC_DIR  the folder where the workers keep their metrics (emptied at start);
                       default: a new one under the temporary folder
"""

import os
import ssl as _ssl

from taxii_server.ops.serving import child_exit, prepare_metrics_folder  # noqa: F401  (child_exit: a gunicorn hook)
from taxii_server.server import ACCESS_LOG_FORMAT, WORKER_CLASS
from taxii_server.tls import gunicorn_ssl_context as ssl_context  # noqa: F401  (gunicorn's ssl_context hook)

# Before the workers load the application: metrics from every worker add up in one folder.
prepare_metrics_folder()

bind = os.environ.get("TAXII_BIND", "0.0.0.0:8443")
workers = int(os.environ.get("TAXII_WORKERS", "4"))
threads = int(os.environ.get("TAXII_THREADS", "4"))
# gthread, also passing the verified client certificate to the application.
worker_class = WORKER_CLASS
timeout = 60

certfile = os.environ["TAXII_TLS_CERT"]
keyfile = os.environ["TAXII_TLS_KEY"]
if os.environ.get("TAXII_TLS_CLIENT_CA"):
    ca_certs = os.environ["TAXII_TLS_CLIENT_CA"]
    cert_reqs = _ssl.CERT_OPTIONAL

accesslog = "-"
access_log_format = ACCESS_LOG_FORMAT  # never includes the Authorization header
# gunicorn's control socket sits at one path per user: servers side by side would share it.
control_socket_disable = True
