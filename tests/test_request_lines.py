"""How request lines reach the log: written in batches off the request's thread,
never lost on a graceful exit, and anything more serious than a request line at once;
and request ids that stay unique across gunicorn's forked workers."""

from __future__ import annotations

import io
import logging
import os

from taxii_server.ops.logs import BatchedStreamHandler, access_log, request_id_from


def handler_on(stream: io.StringIO) -> BatchedStreamHandler:
    handler = BatchedStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    return handler


def line(logger: str, level: int, message: str) -> logging.LogRecord:
    return logging.makeLogRecord({"name": logger, "levelno": level, "levelname": logging.getLevelName(level),
                                  "msg": message})


def test_request_lines_wait_for_the_writer_and_a_flush_writes_them_in_order():
    stream = io.StringIO()
    handler = handler_on(stream)
    handler.FLUSH_INTERVAL = 3600  # the writer thread stays asleep: only flush() writes
    for n in range(3):
        handler.handle(line(access_log.name, logging.INFO, f"GET {n}"))
    assert stream.getvalue() == ""
    handler.flush()
    assert stream.getvalue().splitlines() == [f"{access_log.name} GET {n}" for n in range(3)]


class CountingFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(name)s %(message)s")
        self.formatted = 0

    def format(self, record):
        self.formatted += 1
        return super().format(record)


def test_a_request_line_is_formatted_by_the_writer_not_by_the_request():
    stream, formatter = io.StringIO(), CountingFormatter()
    handler = BatchedStreamHandler(stream)
    handler.setFormatter(formatter)
    handler.FLUSH_INTERVAL = 3600
    handler.handle(line(access_log.name, logging.INFO, "GET 1"))
    assert formatter.formatted == 0
    handler.flush()
    assert (formatter.formatted, stream.getvalue()) == (1, f"{access_log.name} GET 1\n")


def test_a_line_that_cannot_be_formatted_is_reported_and_the_others_are_written(capsys):
    stream = io.StringIO()
    handler = handler_on(stream)
    handler.FLUSH_INTERVAL = 3600
    handler.handle(line(access_log.name, logging.INFO, "GET 1"))
    broken = line(access_log.name, logging.INFO, "GET %d")
    broken.args = ("not a number",)
    handler.handle(broken)
    handler.handle(line(access_log.name, logging.INFO, "GET 3"))
    handler.flush()
    assert stream.getvalue().splitlines() == [f"{access_log.name} GET 1", f"{access_log.name} GET 3"]
    assert "Logging error" in capsys.readouterr().err


def test_any_other_line_is_written_at_once_after_the_request_lines_before_it():
    stream = io.StringIO()
    handler = handler_on(stream)
    handler.FLUSH_INTERVAL = 3600
    handler.handle(line(access_log.name, logging.INFO, "GET 1"))
    handler.handle(line("taxii_server.errors", logging.ERROR, "the store failed"))
    assert stream.getvalue().splitlines() == [f"{access_log.name} GET 1", "taxii_server.errors the store failed"]


def test_a_refused_request_line_at_warning_is_written_at_once():
    stream = io.StringIO()
    handler = handler_on(stream)
    handler.FLUSH_INTERVAL = 3600
    handler.handle(line(access_log.name, logging.WARNING, "GET /metrics 401"))
    assert "401" in stream.getvalue()


def test_the_writer_thread_writes_waiting_lines_within_its_interval():
    stream = io.StringIO()
    handler = handler_on(stream)
    handler.FLUSH_INTERVAL = 0.01
    handler.handle(line(access_log.name, logging.INFO, "GET 1"))
    for _ in range(500):
        if stream.getvalue():
            break
        handler._wake.wait(0.01)
    assert stream.getvalue() == f"{access_log.name} GET 1\n"


def test_request_ids_made_in_a_forked_worker_differ_from_its_parents():
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the child: a gunicorn worker, as far as ids go
        os.write(write_end, request_id_from(None).encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(child, 0)
    from_child = os.read(read_end, 64).decode()
    os.close(read_end)
    from_parent = {request_id_from(None) for _ in range(1000)}
    assert len(from_parent) == 1000 and len(from_child) == 32
    assert from_child[:12] != next(iter(from_parent))[:12]  # its own random part
    assert from_child not in from_parent
