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
- each operator validates one POST at a time in a worker process, and its
  POSTs hold at most two of the worker's threads (one validating, one waiting
  its turn); a third meanwhile gets 429 at once. A worker's threads share one
  CPU (the GIL), so without this one operator's parallel POSTs could take
  every thread of a worker, and other operators' requests would queue behind
  them; with it, a tool that uploads two envelopes at once still has both
  stored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

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
    # Only STIX patterns are parsed (a Sigma or YARA rule is stored as text, bounded by the body's size).
    if item.get("type") != "indicator" or item.get("pattern_type") != "stix" or type(pattern) is not str:
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


# One operator's POSTs hold at most this many of a worker's threads (half of the
# default 4), validating or waiting their turn; one validates at a time.
MAX_HELD_PER_OPERATOR = 2
# How long a POST waits for the operator's earlier one before it is refused.
WAIT_SECONDS = 30.0


@dataclass
class _Turns:
    validating: threading.Lock = field(default_factory=threading.Lock)
    held: int = 0


_turns: dict[str, _Turns] = {}
_turns_lock = threading.Lock()


@contextmanager
def one_post_at_a_time(operator_id: str) -> Iterator[None]:
    """Validate the operator's POSTs in this process one after another; refuse
    with 429 a POST that would hold more threads, or has waited too long."""
    with _turns_lock:
        turns = _turns.setdefault(operator_id, _Turns())
        if turns.held >= MAX_HELD_PER_OPERATOR:
            raise _busy(f"{MAX_HELD_PER_OPERATOR} requests of yours are being validated or waiting their turn in "
                        "this server process; send this one when one of them has been answered.")
        turns.held += 1
    try:
        if not turns.validating.acquire(timeout=WAIT_SECONDS):
            raise _busy(f"Another request of yours was being validated for all of the {WAIT_SECONDS:g} s this one "
                        "waited; send it again.")
        try:
            yield
        finally:
            turns.validating.release()
    finally:
        with _turns_lock:
            turns.held -= 1


def _busy(description: str) -> TaxiiError:
    return TaxiiError(429, "Too many requests", description, {"Retry-After": "1"})
