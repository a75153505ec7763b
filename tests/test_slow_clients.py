"""Slow clients cannot freeze the server; gunicorn's own errors are TAXII errors
(security issue, points 7 and 13).

Dozens of clients connect and send a request head a byte at a time, never
finishing it. A normal request must still be answered while they are all
connected: in the default `taxii-server serve` (1 worker x 4 threads), in the
production command (gunicorn with the worker class, several workers), and
over HTTPS, where slow clients may also stall in the TLS handshake. Every
server is a real subprocess on a loopback port, driven through real sockets.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import threading
import time

import pytest
import requests

from conftest import TAXII, free_port
from test_tls import BIN, OVERRIDES, HttpsServer, make_deployment, start_https_server, tls_client

SLOW_CLIENTS = 24
# How long a normal request may take before the test calls it hung. Not a speed
# target (that is in scripts/bench_abuse.py): without the fix it never returns.
HANG_GUARD = 20
PARTIAL_HEAD = b"GET /taxii2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


class PlainServer(HttpsServer):
    """The same server process, answering plain HTTP."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_plain_server(kind: str, deployment) -> PlainServer:
    port = free_port()
    environ = {name: value for name, value in os.environ.items() if name not in OVERRIDES}
    if kind == "serve":  # the default: 1 worker x 4 threads
        command = [str(BIN / "taxii-server"), "serve", "--config", str(deployment.config), "--port", str(port)]
    else:  # README, Production
        environ["TAXII_CONFIG"] = str(deployment.config)
        command = [str(BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4",
                   "--worker-class", "taxii_server.server.ClientCertificateWorker", "--no-control-socket",
                   "taxii_server.wsgi:app"]
    log = deployment.folder / f"server-{port}.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=environ,
                                   cwd=deployment.folder)
    server = PlainServer(process, port, log)
    for _ in range(400):
        if server.process.poll() is not None:
            pytest.fail(f"the server exited:\n{server.log.read_text()}")
        try:
            requests.get(f"{server.url}/taxii2/", timeout=5)
            return server
        except requests.ConnectionError:
            time.sleep(0.05)
    server.stop()
    pytest.fail(f"the server never answered:\n{server.log.read_text()}")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    return make_deployment(tmp_path_factory.mktemp("slow-clients"))


@pytest.fixture(params=["serve", "production", "serve-https"])
def server(request, deployment):
    kind = request.param
    running = start_https_server("serve", deployment) if kind == "serve-https" else start_plain_server(kind, deployment)
    running.tls = kind == "serve-https"
    yield running
    running.stop()


class SlowClients:
    """Connections that send a request head (or, over TLS, a handshake) a byte
    at a time and never finish, until closed."""

    def __init__(self, port: int, count: int, tls_context: ssl.SSLContext | None):
        self.sockets: list[socket.socket] = []
        for n in range(count):
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            if tls_context is not None and n % 2:
                raw.sendall(b"\x16\x03\x01")  # the first bytes of a ClientHello, and no more
                self.sockets.append(raw)
                continue
            connection = tls_context.wrap_socket(raw, server_hostname="127.0.0.1") if tls_context else raw
            connection.sendall(PARTIAL_HEAD)
            self.sockets.append(connection)
        self._stop = threading.Event()
        self._dripping = threading.Thread(target=self._drip, daemon=True)
        self._dripping.start()

    def _drip(self) -> None:
        while not self._stop.wait(1.0):
            for connection in self.sockets:
                try:
                    connection.send(b"a")
                except OSError:
                    pass

    def all_still_connected(self) -> bool:
        """No slow connection has been answered or closed by the server yet."""
        for connection in self.sockets:
            connection.setblocking(False)
            try:
                data = connection.recv(1)
            except (BlockingIOError, ssl.SSLWantReadError):
                continue
            finally:
                connection.setblocking(True)
            if data is not None:
                return False
        return True

    def close(self) -> None:
        self._stop.set()
        self._dripping.join()
        for connection in self.sockets:
            connection.close()


def test_a_normal_request_is_answered_while_dozens_of_slow_clients_are_connected(server, deployment):
    tls = tls_client(deployment.cert) if server.tls else None
    slow = SlowClients(server.port, SLOW_CLIENTS, tls)
    try:
        time.sleep(1.5)  # every slow client has sent bytes, and the server has read them
        answer = requests.get(f"{server.url}/api/", headers={"Accept": TAXII,
                                                              "Authorization": f"Bearer {deployment.keys['northtel']}"},
                              verify=str(deployment.cert) if server.tls else True, timeout=HANG_GUARD)
        assert answer.status_code == 200 and answer.json()["title"] == "Test root"
        assert slow.all_still_connected()
    finally:
        slow.close()


def test_a_head_not_finished_in_time_is_answered_408_and_closed(deployment):
    server = start_plain_server("serve", deployment)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=HANG_GUARD + 10) as connection:
            connection.sendall(PARTIAL_HEAD)
            status, headers, body = read_response(connection)
        assert status == 408
        assert headers["content-type"] == TAXII and json.loads(body)["http_status"] == "408"
    finally:
        server.stop()


@pytest.mark.parametrize("request_bytes, status", [
    (b"GET /taxii2/" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET /taxii2/ FTP/1.0\r\nHost: x\r\n\r\n", 400),
    (b"GET /taxii2/ HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n", 400),
], ids=["uri-too-long", "bad-version", "bad-header-name"])
def test_requests_gunicorn_refuses_get_taxii_errors_not_html(deployment, request_bytes, status):
    server = start_plain_server("serve", deployment)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=HANG_GUARD) as connection:
            connection.sendall(request_bytes)
            answered, headers, body = read_response(connection)
        assert answered == status
        assert headers["content-type"] == TAXII
        error = json.loads(body)
        assert error["http_status"] == str(status) and error["title"]
    finally:
        server.stop()


def read_response(connection: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One whole response, read until the server closes the connection."""
    data = b""
    while chunk := connection.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body
