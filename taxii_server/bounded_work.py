"""Bounds on the work one POST can make the server do.

Validation is the costly part of a POST: stix2 and its ANTLR pattern parser
cost up to tens of microseconds per byte of a pattern, and far more for long
chains of operators. So that no request can hold a CPU for long:

- an envelope carries at most `max_objects_per_envelope` objects (else 413,
  nothing stored);
- a pattern is measured before any parser sees it: its length, its AND/OR/
  FOLLOWEDBY operators and its nesting, each capped; a pattern past a cap is
  refused on its own object;
- the validation of one request gets `validation_seconds` of CPU time; the
  objects left when it is spent are refused one by one ("send it again"),
  while those already validated are stored. The status says exactly which
  objects to resend; refusing the whole request instead would throw away the
  work done and make a client that resends the same envelope fail for ever.
  CPU time of the request's own thread, not wall time: what one operator may
  send does not shrink when others keep the server busy;
- each operator validates at most one POST at a time in a worker process;
  another POST of the same operator meanwhile gets 429 at once. A worker's
  threads share one CPU (the GIL), so without this one operator's parallel
  POSTs could take every thread of a worker, and other operators' requests
  would queue behind them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from .config import WorkLimits
from .errors import TaxiiError
from .pattern_checker import _TOKEN

_OPERATORS = frozenset({"AND", "OR", "FOLLOWEDBY"})
_OPENING, _CLOSING = "(", ")"


def envelope_size_problem(count: int, limits: WorkLimits) -> TaxiiError | None:
    if count > limits.max_objects_per_envelope:
        return TaxiiError(413, "Payload too large",
                          f"The envelope has {count} objects; at most {limits.max_objects_per_envelope} are accepted "
                          "in one request. Nothing was stored: send them in several requests.")
    return None


def pattern_problem(item: dict, limits: WorkLimits) -> str | None:
    """Why the object's pattern is too large or too complex to be parsed, or None.

    Only the sizes are judged here; whether the pattern is valid STIX is for
    the validators, which run only when this finds nothing."""
    pattern = item.get("pattern")
    if type(pattern) is not str:
        return None
    if len(pattern) > limits.max_pattern_length:
        return (f"pattern is {len(pattern)} characters long; this server accepts at most "
                f"{limits.max_pattern_length}. Split the indicator.")
    operators = depth = deepest = 0
    # The tokens of the STIX pattern grammar: string literals are one token
    # each, so an AND or a bracket inside quotes is not counted.
    for token in _TOKEN.findall(pattern):
        if token == _OPENING:
            depth += 1
            deepest = max(deepest, depth)
        elif token == _CLOSING:
            depth -= 1
        elif token in _OPERATORS:
            operators += 1
    if operators > limits.max_pattern_operators:
        return (f"pattern has {operators} AND, OR and FOLLOWEDBY operators; this server accepts at most "
                f"{limits.max_pattern_operators}. Split the indicator.")
    if deepest > limits.max_pattern_nesting:
        return (f"pattern nests parentheses {deepest} deep; this server accepts at most "
                f"{limits.max_pattern_nesting}.")
    return None


class ValidationClock:
    """The CPU time one request's validation has used, against its budget."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._start = time.thread_time()

    def spent(self) -> bool:
        return time.thread_time() - self._start > self.seconds

    def refusal(self) -> str:
        return (f"not validated: this request used its {self.seconds:g} s of validation time before reaching "
                "this object. Nothing is wrong with it as far as the server knows; send it again in a smaller "
                "envelope.")


_busy_operators: set[str] = set()
_busy_lock = threading.Lock()


@contextmanager
def one_post_at_a_time(operator_id: str) -> Iterator[None]:
    """Hold the operator's one validation slot in this process, or refuse with 429."""
    with _busy_lock:
        if operator_id in _busy_operators:
            raise TaxiiError(429, "Too many requests",
                             "Another request of yours is being validated by this server process; "
                             "send this one when it has been answered.", {"Retry-After": "1"})
        _busy_operators.add(operator_id)
    try:
        yield
    finally:
        with _busy_lock:
            _busy_operators.discard(operator_id)
