"""The store's side of the change feed: commit, then announce, once, in every process.

Two stores on one file stand for two processes here (each has its own origin, its own
connections and its own bus); tests/test_change_feed.py does it with real processes.
"""

from __future__ import annotations

import asyncio
import smtplib
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandbox.events import (
    EntriesExpunged,
    Event,
    FlagsChanged,
    MessagesCleared,
    MessageStored,
    StoreResynced,
)
from sandbox.store import Copy, NewMessage, SqliteStore, changes
from sandbox.testing import Sandbox
from tests.conftest import clean_env

LARRY = "larry@beta.test"


def message(subject: str) -> NewMessage:
    raw = f"From: a@alpha.test\r\nSubject: {subject}\r\n\r\nx\r\n".encode()
    return NewMessage(raw, "a@alpha.test", (LARRY,), "test", (Copy(LARRY),))


@pytest.fixture
async def two(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, SqliteStore]]:
    path = str(tmp_path / "feed.sqlite3")
    first = await SqliteStore.open(path, feed_interval=3600)  # polled by hand below
    second = await SqliteStore.open(path, feed_interval=3600)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


def record(store: SqliteStore) -> list[Event]:
    seen: list[Event] = []
    store.bus.listen(seen.append)
    return seen


async def test_each_change_reaches_the_other_store_once_after_its_commit(
    two: tuple[SqliteStore, SqliteStore],
) -> None:
    first, second = two
    here, there = record(first), record(second)
    stored = await first.ingest(message("one"))
    assert [type(e) for e in here] == [MessageStored] and not here[0].remote
    assert there == []  # not before the other side looks
    assert await second.poll_changes() == 1
    assert await second.poll_changes() == 0  # once only
    [remote] = there
    assert isinstance(remote, MessageStored) and remote.remote
    assert remote.entries == here[0].entries and remote.message_id == stored.message_id

    entry = stored.copies[0].entry_id
    await second.set_seen([entry], True)
    await second.delete_entries([entry])
    assert await first.poll_changes() == 2
    assert [type(e) for e in here[1:]] == [FlagsChanged, EntriesExpunged]
    assert all(e.remote for e in here[1:])
    assert await second.poll_changes() == 0  # its own rows are skipped

    await first.clear()
    await second.poll_changes()
    assert isinstance(there[-1], MessagesCleared) and there[-1].count == 0


async def test_a_store_that_fell_behind_the_trimmed_window_resyncs(
    two: tuple[SqliteStore, SqliteStore],
) -> None:
    first, second = two
    there = record(second)
    for n in range(3):
        await first.ingest(message(f"m{n}"))

    async def trim_all(conn: object) -> None:
        await changes.trim(conn, keep=1)  # type: ignore[arg-type]

    await first.write(trim_all)
    await second.poll_changes()
    assert isinstance(there[0], StoreResynced)
    assert [type(e) for e in there[1:]] == [MessageStored]  # the one row still kept


async def test_a_listener_that_raises_does_not_undo_or_fail_the_commit(tmp_path: Path) -> None:
    store = await SqliteStore.open(str(tmp_path / "raise.sqlite3"))
    try:

        def broken(event: Event) -> None:
            raise RuntimeError("a buggy subscriber")

        store.bus.listen(broken)
        seen = record(store)  # listeners after the broken one still hear of it
        stored = await store.ingest(message("kept"))
        assert [r.subject for r in await store.list_messages()] == ["kept"]
        assert [type(e) for e in seen] == [MessageStored]
        assert stored.copies
    finally:
        await store.close()


def test_smtp_says_250_once_however_a_listener_fails() -> None:
    """A raising listener after the commit used to turn the 250 into a 451 (and a retry)."""
    with Sandbox() as sandbox:

        def broken(event: Event) -> None:
            raise RuntimeError("a buggy subscriber")

        sandbox.runtime.bus.listen(broken)
        raw = b"From: app@real.example\r\nSubject: once\r\n\r\nbody\r\n"
        with smtplib.SMTP(*sandbox.smtp_address, timeout=10) as client:
            assert client.sendmail("app@real.example", ["x@real.example"], raw) == {}
        assert [m.subject for m in sandbox.messages(to="x@real.example")] == ["once"]


def test_a_second_process_holding_the_write_lock_makes_the_cli_wait_not_fail(
    tmp_path: Path,
) -> None:
    """Two processes writing at once: the later one waits for the lock, then succeeds."""
    data = tmp_path / "locked.sqlite3"

    async def prepare() -> None:
        store = await SqliteStore.open(str(data), follow=False)
        await store.ingest(message("before"))
        await store.close()

    asyncio.run(prepare())
    holder = sqlite3.connect(data, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
    clear = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "clear", "--data", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    # Longer than one busy_timeout, so the store's own retry is what gets it through.
    time.sleep(6.0)
    assert clear.poll() is None, "clear did not wait for the lock"
    holder.execute("COMMIT")
    holder.close()
    out, err = clear.communicate(timeout=60)
    assert clear.returncode == 0, err
    assert "database is locked" not in err
    assert out.strip() == "deleted 1 message"


async def test_journal_is_trimmed_to_its_cap(tmp_path: Path) -> None:
    store = await SqliteStore.open(str(tmp_path / "journal.sqlite3"), follow=False)
    try:
        for n in range(30):
            store.journal("smtp.session", {"n": n})
        await store.write(lambda conn: asyncio.sleep(0))  # after the journal's own write
        assert await store.trim_journal(10) == 20
        rows = await store.events(kind="smtp.session")
        assert [r[3]["n"] for r in rows] == list(range(20, 30))
    finally:
        await store.close()
