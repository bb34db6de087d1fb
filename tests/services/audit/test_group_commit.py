"""The group-commit writer: batching, waiting, isolation of a bad item, flush and stop."""

from __future__ import annotations

import threading
from contextlib import contextmanager

import pytest

from app.services.audit.group_commit import GroupCommitWriter, WorkItem


class FakeDatabase:
    def __init__(self) -> None:
        self.committed: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()

    @contextmanager
    def transaction(self):
        self.gate.wait()
        batch: list[str] = []
        yield batch  # the "cursor": items append their names
        if "bad" in batch:
            raise RuntimeError("constraint failed")
        self.committed.append(batch)


class Named(WorkItem):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def apply(self, cursor) -> None:
        cursor.append(self.name)


@pytest.fixture
def database():
    return FakeDatabase()


@pytest.fixture
def writer(database):
    writer = GroupCommitWriter(database.transaction, name="test-writer")
    yield writer
    writer.stop()


def test_waited_item_is_committed_when_submit_returns(writer, database):
    writer.submit(Named("a"), wait=True)
    assert database.committed == [["a"]]


def test_items_queued_while_a_commit_runs_share_the_next_commit(writer, database):
    database.gate.clear()
    writer.submit(Named("first"), wait=False)
    for name in ("b", "c", "d"):
        writer.submit(Named(name), wait=False)
    database.gate.set()
    writer.flush()
    assert [name for batch in database.committed for name in batch] == ["first", "b", "c", "d"]
    assert len(database.committed) <= 2


def test_a_response_row_lingers_to_share_the_next_request_rows_commit(writer, database):
    writer.submit(Named("response-1"), wait=False)
    writer.submit(Named("request-2"), wait=True)
    assert database.committed == [["response-1", "request-2"]]


def test_a_bad_item_fails_alone_and_the_others_are_written(writer, database, caplog):
    database.gate.clear()
    bad = Named("bad")
    writer.submit(Named("x"), wait=False)
    writer.submit(bad, wait=False)
    writer.submit(Named("y"), wait=False)
    database.gate.set()
    writer.flush()
    assert sorted(name for batch in database.committed for name in batch) == ["x", "y"]
    assert isinstance(bad.error, RuntimeError)
    assert "AUDIT WRITE FAILED" in caplog.text


def test_stop_writes_everything_still_queued(writer, database):
    database.gate.clear()
    for index in range(50):
        writer.submit(Named(str(index)), wait=False)
    database.gate.set()
    writer.stop()
    assert sorted(int(name) for batch in database.committed for name in batch) == list(range(50))


class ThreadRecorder(FakeDatabase):
    """Also notes which thread ran each commit."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[str] = []

    @contextmanager
    def transaction(self):
        with super().transaction() as batch:
            yield batch
        self.threads.append(threading.current_thread().name)


def test_an_idle_writer_commits_a_waited_item_in_the_callers_own_thread():
    database = ThreadRecorder()
    writer = GroupCommitWriter(database.transaction, name="test-writer")
    writer.submit(Named("a"), wait=True)
    assert database.threads == [threading.current_thread().name]  # no hand-off to another thread


def test_callers_waiting_during_a_commit_share_the_next_one_and_all_return(writer, database):
    database.gate.clear()
    first = threading.Thread(target=writer.submit, args=(Named("first"), ), kwargs={"wait": True})
    first.start()
    while not writer._leading:  # the first caller leads and is held inside its transaction
        threading.Event().wait(0.001)
    others = [
        threading.Thread(target=writer.submit, args=(Named(f"w{index}"),), kwargs={"wait": True})
        for index in range(5)
    ]
    for thread in others:
        thread.start()
    while len(writer._pending) < 5:
        threading.Event().wait(0.001)
    database.gate.set()
    for thread in [first, *others]:
        thread.join(timeout=5)
        assert not thread.is_alive()
    assert database.committed[0] == ["first"]
    assert sorted(database.committed[1]) == [f"w{index}" for index in range(5)]
    assert len(database.committed) == 2
    assert not writer._leading


def test_a_lingering_item_is_written_by_the_flusher_when_no_request_comes(writer, database):
    writer.submit(Named("response"), wait=False)
    assert database.committed == []  # lingering, to share a request row's commit
    wait_for_a_commit(database)
    assert database.committed == [["response"]]


def test_with_nothing_else_in_flight_a_queued_item_is_written_without_lingering(database, monkeypatch):
    import app.services.audit.group_commit as group_commit

    monkeypatch.setattr(group_commit, "LINGER_S", 30.0)  # a linger would outlast the wait below
    writer = GroupCommitWriter(database.transaction, name="test-writer", calls_in_flight=lambda: 0)
    writer.submit(Named("response"), wait=False)
    wait_for_a_commit(database)
    assert database.committed == [["response"]]


def wait_for_a_commit(database, seconds: float = 5.0) -> None:
    """Poll until the fake database has committed something (the flusher runs in its own thread)."""
    pause = threading.Event()
    for _ in range(int(seconds / 0.005)):
        if database.committed:
            return
        pause.wait(0.005)


class Race(Exception):
    """What PostgreSQL raises to one of two transactions that deadlocked."""


class Keyed(Named):
    __slots__ = ("key", "failures")

    def __init__(self, name: str, key: str) -> None:
        super().__init__(name)
        self.key = key
        self.failures: list[BaseException] = []

    @property
    def lock_key(self) -> str:
        return self.key

    def failed(self, error: BaseException) -> None:
        super().failed(error)
        self.failures.append(error)


def test_a_batch_takes_its_locks_in_one_order_keeping_each_sessions_own_order(database):
    writer = GroupCommitWriter(database.transaction, name="test-writer")
    database.gate.clear()  # nothing commits until all four are queued: they share one batch
    for item in [Keyed("b1", "b"), Keyed("a1", "a"), Keyed("b2", "b"), Keyed("a2", "a")]:
        writer.submit(item, wait=False)
    database.gate.set()
    writer.flush()
    assert database.committed == [["a1", "a2", "b1", "b2"]]
    writer.stop()


def test_a_batch_that_lost_a_deadlock_is_retried_not_failed():
    attempts = []

    @contextmanager
    def racy():
        batch: list[str] = []
        yield batch
        attempts.append(list(batch))
        if len(attempts) == 1:
            raise Race("deadlock detected")

    writer = GroupCommitWriter(racy, name="racy", lost_a_race=lambda exc: isinstance(exc, Race),
                               refused_for_content=lambda exc: False)
    item = Keyed("x", "s")
    writer.submit(item, wait=True)
    assert attempts == [["x"], ["x"]] and item.failures == [] and item.error is None
    writer.stop()
