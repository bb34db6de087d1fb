"""The stall watch: a reader past its deadline gets TimeoutError in its read, and only there."""

from __future__ import annotations

import gevent
from gevent.event import Event

from app.providers.stall import StallWatch


def test_a_reader_waiting_past_its_deadline_gets_timeout_error_in_its_read():
    watch = StallWatch()
    never = Event()
    outcome = []

    def reader():
        watch.arm(1, 0.05, gevent.getcurrent())
        try:
            never.wait()
            outcome.append("woke")
        except TimeoutError:
            outcome.append("timeout")
        finally:
            watch.disarm(1)

    gevent.spawn(reader).join(timeout=5)
    assert outcome == ["timeout"]
    assert len(watch) == 0


def test_a_reader_that_got_its_data_is_not_thrown_into():
    watch = StallWatch()
    data = Event()
    outcome = []

    def reader():
        watch.arm(2, 0.05, gevent.getcurrent())
        try:
            data.wait()
        finally:
            watch.disarm(2)
        gevent.sleep(0.6)  # past the deadline, doing something else: nothing may land here
        outcome.append("done")

    runner = gevent.spawn(reader)
    gevent.sleep(0)
    data.set()
    runner.join(timeout=5)
    assert outcome == ["done"]

