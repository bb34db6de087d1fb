"""The journal on disk: framing, torn records, the size cap, dead letters, counts, and who may replay what."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys

import pytest

from app.services.audit.claim import JournalMismatch
from app.services.audit.journal import Journal, read_frames, segment_name
from app.services.audit.manual import list_dead_letters
from app.services.audit.segments import (
    alive_markers,
    claimed,
    forget_worker,
    segments,
    status,
    total_bytes,
    worker_gone,
)

HOSTILE = {"text": "nul\x00 lone\ud800 high\udfff \u2028 emoji \U0001f600 日本語", "n": 2**70}


def journal(directory, worker_id="w1", max_bytes=1 << 30, target="sqlite:///x.db") -> Journal:
    opened = Journal(directory, worker_id=worker_id, target=target, max_bytes=max_bytes)
    opened.open()
    return opened


def record(number: int, **extra) -> dict:
    return {"kind": "open", "request": {"request_id": f"r{number}", "timestamp": 1000 + number}, **extra}


def test_records_round_trip_exactly_whatever_their_text(tmp_path):
    j = journal(tmp_path)
    big = "x" * (10 << 20)
    assert j.append(record(1, hostile=HOSTILE), admit=True, durable=True)
    assert j.append(record(2, body=big), admit=True, durable=True)
    j.seal()
    [(_, _, path)] = segments(tmp_path)
    read = [item for _, item in read_frames(path)]
    assert read[0]["hostile"] == HOSTILE and read[1]["body"] == big


def test_a_torn_last_record_is_left_out(tmp_path):
    j = journal(tmp_path)
    for number in range(3):
        j.append(record(number), admit=True, durable=True)
    j.seal()
    [(_, _, path)] = segments(tmp_path)
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(size - 5)  # the process died while writing the last one
    assert [item["request"]["request_id"] for _, item in read_frames(path)] == ["r0", "r1"]
    with open(path, "r+b") as handle:
        handle.seek(30)
        handle.write(b"\xff")  # a flipped byte: the CRC stops the read there
    assert [item["request"]["request_id"] for _, item in read_frames(path)] == []


def test_past_the_cap_new_calls_are_refused_but_admitted_ones_finish(tmp_path):
    j = journal(tmp_path, max_bytes=300)
    assert j.append(record(1), admit=True, durable=True)
    assert not j.append(record(2, pad="p" * 400), admit=True, durable=True)
    assert j.append({"kind": "close", "pad": "p" * 400}, admit=False, durable=False)
    assert j.total_bytes > 300


def test_the_cap_counts_every_process_writing_the_directory(tmp_path):
    first, second = journal(tmp_path, "w1", max_bytes=1000), journal(tmp_path, "w2", max_bytes=1000)
    assert first.append(record(1, pad="p" * 600), admit=True, durable=True)
    second.recount(total_bytes(tmp_path))  # what its drainer does every tick
    assert not second.append(record(2, pad="p" * 600), admit=True, durable=True)


def test_a_segment_being_written_is_locked_and_a_sealed_one_is_free(tmp_path):
    j = journal(tmp_path)
    j.append(record(1), admit=True, durable=True)
    [(_, seq, path)] = segments(tmp_path)
    assert path.name == segment_name("w1", seq)
    with claimed(path) as fd:
        assert fd is None
    j.seal()
    with claimed(path) as fd:
        assert fd is not None
        with claimed(path) as again:
            assert again is None  # one drainer at a time
    j.append(record(2), admit=True, durable=True)
    assert [seq for _, seq, _ in segments(tmp_path)] == [1, 2]


def test_a_journal_belongs_to_one_database(tmp_path):
    journal(tmp_path, target="postgresql://db-a")
    with pytest.raises(JournalMismatch, match="give each database its own AUDIT_JOURNAL_DIR"):
        journal(tmp_path, "w2", target="postgresql://db-b")


def test_dead_letters_are_kept_with_their_reason_and_listed(tmp_path):
    j = journal(tmp_path)
    assert j.dead_letter(record(7, session={"id": "s"}), "DataError: value too long")
    [letter] = list_dead_letters(tmp_path)
    assert (letter["kind"], letter["request_id"], letter["error"]) == ("open", "r7", "DataError: value too long")
    assert status(tmp_path).dead_letters == 1


def test_the_unrecorded_count_survives_the_process_and_its_cleanup(tmp_path):
    j = journal(tmp_path)
    j.count_unrecorded()
    j.count_unrecorded()
    j.close()
    assert status(tmp_path).unrecorded == 2
    forget_worker(tmp_path, "w1")  # folded into the directory's total
    assert status(tmp_path).unrecorded == 2 and not (tmp_path / "w1.unrecorded").exists()


def test_status_counts_what_waits_and_since_when(tmp_path):
    j = journal(tmp_path)
    for number in range(5):
        j.append(record(number), admit=True, durable=True)
    found = status(tmp_path)
    assert (found.records, found.segments, found.oldest_at) == (5, 1, 1000)
    assert found.bytes == total_bytes(tmp_path) > 0


def test_a_killed_writer_is_seen_gone_and_its_segment_can_be_replayed(tmp_path):
    code = (
        "import sys, time\n"
        "from app.services.audit.journal import Journal\n"
        f"j = Journal({str(tmp_path)!r}, worker_id='victim', target='sqlite:///x.db', max_bytes=1 << 30)\n"
        "j.open()\n"
        "j.append({'kind': 'open', 'request': {'request_id': 'r1', 'timestamp': 1}}, admit=True, durable=True)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))))
    try:
        assert writer.stdout.readline().strip() == "ready"
        assert worker_gone(tmp_path, "victim") is False
        [(_, _, path)] = segments(tmp_path)
        with claimed(path) as fd:
            assert fd is None  # its writer still holds it
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert worker_gone(tmp_path, "victim") is True and alive_markers(tmp_path) == ["victim"]
    assert worker_gone(tmp_path, "never-here") is None
    with claimed(path) as fd:
        assert fd is not None


def _claim(directory, worker_id: str, barrier) -> None:
    barrier.wait()
    try:
        Journal(directory, worker_id=worker_id, target="sqlite:///x.db", max_bytes=1 << 30).open()
    except JournalMismatch:
        os._exit(3)
    os._exit(0)


def test_workers_starting_at_once_all_claim_a_fresh_journal(tmp_path):
    """A first start: every worker claims the new directory at once, none reads the claim half written."""
    context = multiprocessing.get_context("fork")
    for trial in range(30):
        directory = tmp_path / f"first-start-{trial}"
        barrier = context.Barrier(4)
        workers = [context.Process(target=_claim, args=(directory, f"w{n}", barrier)) for n in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=30)
        assert [worker.exitcode for worker in workers] == [0, 0, 0, 0], f"trial {trial}"
        assert (directory / "TARGET").read_text() == "sqlite:///x.db\n"
        assert not [p.name for p in directory.iterdir() if p.name.startswith(".")]
