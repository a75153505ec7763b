"""How the worker reads requests off its connections.

gunicorn's threaded worker hands a connection to a pool thread as soon as a
byte arrives, and the thread then reads the request's head (the request line
and headers) with blocking reads. A client sending its head a byte every few
seconds holds a thread all that time, and a handful of such clients hold all
of them: the server stops answering anyone.

`ReadsHeadsInTheEventLoop` moves that reading into the worker's event loop
(its selector), which waits on every connection at once without holding a
thread: the TLS handshake, when the worker serves HTTPS, and then the bytes
of the head, as they come, non-blocking. Only a connection whose head is
complete goes to a thread, with the bytes read so far put back in front of the
request parser. A head not complete within HEAD_TIMEOUT seconds of the
connection (or of the previous response, on a kept-alive connection) is
answered 408 and the connection closed. The body of a request is still read
by the thread serving it, bounded by max_content_length; in the production
set-up the reverse proxy receives whole requests before passing them on.

`TaxiiErrorPages` answers the requests gunicorn itself refuses (a malformed
request line, a URL or header past its limits) with a TAXII error resource
instead of gunicorn's HTML page.
"""

from __future__ import annotations

import re
import selectors
import ssl
import time
from collections import deque
from functools import partial

import orjson
from gunicorn import sock as gunicorn_sock
from gunicorn import util

from .media import TAXII_MEDIA_TYPE

HEAD_TIMEOUT = 10.0  # seconds a client has to send a whole request head
_READ_SIZE = 65536
# A head is complete at its empty line (CRLF CRLF; bare LF is left for the parser to judge).
_END_OF_HEAD = re.compile(rb"\r?\n\r?\n")


class ReadsHeadsInTheEventLoop:
    """A mixin for gunicorn's ThreadWorker (see the module docstring)."""

    def init_process(self):
        self.awaiting_heads = deque()  # connections in the event loop, oldest deadline first
        self._tls_context = gunicorn_sock.ssl_context(self.cfg) if self.cfg.is_ssl else None
        super().init_process()

    # -- gunicorn's entry points ---------------------------------------------------
    def enqueue_req(self, conn):
        """Every connection with a request to serve passes here (new, kept alive,
        or with bytes left over from the previous request): to a thread when its
        head is complete, else to the event loop until it is."""
        if not hasattr(conn, "head"):
            conn.head = bytearray()
            if self._tls_context is not None:
                conn.sock = self._tls_context.wrap_socket(conn.sock, server_side=True, do_handshake_on_connect=False,
                                                          suppress_ragged_eofs=self.cfg.suppress_ragged_eofs)
                conn.handshaken = False
        if conn.parser is not None:
            conn.head += conn.parser.unreader.take_buffered()
            conn.head += _decrypted_already(conn)
        if self._head_complete(conn):
            super().enqueue_req(conn)
            return
        conn.sock.setblocking(False)
        conn.head_deadline = time.monotonic() + HEAD_TIMEOUT
        self.awaiting_heads.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._read_head, conn))

    def handle(self, conn):
        """In a pool thread: put the head read in the event loop back in front of the parser."""
        if conn.parser is None:
            if self._tls_context is not None:
                # The handshake is done: give gunicorn's connection the parser it
                # would have made after wrapping the socket itself.
                from gunicorn import http
                conn.initialized = True
                conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
            else:
                conn.sock.setblocking(True)
                conn.init()
        conn.sock.setblocking(True)
        if conn.head:
            conn.parser.unreader.unread(bytes(conn.head))
            conn.head = bytearray()
        return super().handle(conn)

    def murder_pending(self):
        super().murder_pending()
        now = time.monotonic()
        while self.awaiting_heads and self.awaiting_heads[0].head_deadline <= now:
            conn = self.awaiting_heads.popleft()
            self.poller.unregister(conn.sock)
            if getattr(conn, "handshaken", True):
                _send_quietly(conn.sock, taxii_error(408, "Request Timeout",
                                                     f"The request head did not arrive within {HEAD_TIMEOUT:g} s."))
            self._close(conn)

    # -- the event loop's side ----------------------------------------------------
    def _read_head(self, conn, _fileobj):
        try:
            if not getattr(conn, "handshaken", True):
                conn.sock.do_handshake()
                conn.handshaken = True
            data = conn.sock.recv(_READ_SIZE)
            while data and getattr(conn.sock, "pending", lambda: 0)():  # TLS records already decrypted
                data += conn.sock.recv(_READ_SIZE)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return  # more bytes needed (a TLS record, a handshake message): wait for them
        except (OSError, ValueError):  # reset, a failed handshake, an unusable socket
            data = b""
        if not data:
            self._stop_awaiting(conn)
            self._close(conn)
            return
        conn.head += data
        if self._head_complete(conn):
            self._stop_awaiting(conn)
            conn.data_ready = True
            super().enqueue_req(conn)

    def _head_complete(self, conn) -> bool:
        return bool(_END_OF_HEAD.search(conn.head)) or len(conn.head) > self._largest_head()

    def _largest_head(self) -> int:
        """Past this many bytes without an empty line, the parser is sure to refuse the head."""
        cfg = self.cfg
        fields = (cfg.limit_request_fields or 32768) * ((cfg.limit_request_field_size or 8190) + 2)
        return min((cfg.limit_request_line or 8190) + fields + 4, 1 << 20)

    def _stop_awaiting(self, conn):
        self.poller.unregister(conn.sock)
        self.awaiting_heads.remove(conn)

    def _close(self, conn):
        self.nr_conns -= 1
        conn.close()


def _decrypted_already(conn) -> bytes:
    """Bytes the TLS layer has decrypted but not handed over: the socket will not turn readable for them."""
    if not getattr(conn, "handshaken", False):
        return b""
    try:
        return conn.sock.recv(conn.sock.pending()) if conn.sock.pending() else b""
    except (OSError, ValueError):  # the connection broke: the next read finds out and closes it
        return b""


class TaxiiErrorPages:
    """A mixin for a gunicorn worker: its own error responses as TAXII error resources."""

    def handle_error(self, req, client, addr, exc):
        # gunicorn picks the status and logs; its HTML page is caught here and replaced.
        page = _CapturedPage()
        super().handle_error(req, page, addr, exc)
        status, reason = page.status()
        description = ("The request could not be read as HTTP." if status < 500
                       else "The server could not complete the request.")
        _send_quietly(client, taxii_error(status, reason, description))


def taxii_error(status: int, title: str, description: str) -> bytes:
    body = orjson.dumps({"title": title, "http_status": str(status), "description": description})
    head = (f"HTTP/1.1 {status} {title}\r\nConnection: close\r\nContent-Type: {TAXII_MEDIA_TYPE}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


def _send_quietly(sock, data: bytes) -> None:
    try:
        util.write_nonblock(sock, data)
    except (OSError, ValueError):
        pass  # the client is gone, or cannot take it without waiting: nothing to do


class _CapturedPage:
    """Stands in for the client's socket while gunicorn writes its error page."""

    def __init__(self):
        self.data = bytearray()

    def gettimeout(self):
        return 0.0

    def setblocking(self, flag):
        pass

    def sendall(self, data):
        self.data += data

    def status(self) -> tuple[int, str]:
        line = bytes(self.data).split(b"\r\n", 1)[0].decode("latin-1")
        match = re.match(r"HTTP/1\.[01] (\d{3}) (.*)", line)
        return (int(match[1]), match[2]) if match else (500, "Internal Server Error")
