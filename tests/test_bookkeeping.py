"""The bookkeeping thread (bookkeeping.py): every task at the end of each interval;
a task asked for sooner (a rate-limit payment) alone, without the others' commits.
"""

import threading

from taxii_server.bookkeeping import Bookkeeper


class Task:
    """A bookkeeping task that counts its runs and says when it has run."""

    def __init__(self):
        self.runs = 0
        self.ran = threading.Event()

    def __call__(self):
        self.runs += 1
        self.ran.set()


def test_a_task_asked_for_sooner_runs_alone_and_the_others_wait_for_the_interval():
    audit, payments = Task(), Task()
    bookkeeper = Bookkeeper([audit, payments], interval=60)
    bookkeeper.ensure_running()
    try:
        bookkeeper.run_soon(payments)
        assert payments.ran.wait(10)
        payments.ran.clear()
        bookkeeper.run_soon(payments)
        assert payments.ran.wait(10)
        assert (audit.runs, payments.runs) == (0, 2)
    finally:
        bookkeeper.stop()
    assert audit.runs == 1  # stopping writes everything


def test_every_task_runs_at_the_end_of_each_interval():
    audit, payments = Task(), Task()
    bookkeeper = Bookkeeper([audit, payments], interval=0.05)
    bookkeeper.ensure_running()
    try:
        assert audit.ran.wait(10) and payments.ran.wait(10)
    finally:
        bookkeeper.stop()


def test_a_failing_task_does_not_stop_the_others():
    def failing():
        raise OSError("disk full")

    payments = Task()
    bookkeeper = Bookkeeper([failing, payments], interval=60)
    bookkeeper.flush()
    assert payments.runs == 1
