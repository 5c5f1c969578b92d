"""The store on its own: a real SQLite file (or :memory:), no sockets."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.store import INBOX, SENT, Copy, Hop, MessageFilter, NewMessage, SqliteStore, StoreError

RAW = b"From: A <a@alpha.test>\r\nTo: b@beta.test\r\nSubject: s\r\n\r\nbody\r\n"


def new(*copies: Copy, raw: bytes = RAW, sender: str = "a@alpha.test") -> NewMessage:
    return NewMessage(raw, sender, tuple(c.mailbox for c in copies), "test", copies)


@pytest.fixture(params=["file", "memory"])
async def store(request, tmp_path: Path):
    path = str(tmp_path / "s.sqlite3") if request.param == "file" else ":memory:"
    s = await SqliteStore.open(path)
    yield s
    await s.close()


async def test_message_stored_once_with_a_copy_per_folder(store: SqliteStore) -> None:
    stored = await store.ingest(
        new(Copy("b@beta.test"), Copy("C@Beta.test"), Copy("a@alpha.test", SENT))
    )
    assert [(c.mailbox, c.folder, c.uid) for c in stored.copies] == [
        ("b@beta.test", INBOX, 1),
        ("c@beta.test", INBOX, 1),
        ("a@alpha.test", SENT, 1),
    ]
    records = await store.list_messages()
    assert {r.message_id for r in records} == {stored.message_id}
    assert await store.raw(stored.message_id) == RAW


async def test_uids_ascend_and_survive_clear(store: SqliteStore) -> None:
    for _ in range(3):
        await store.ingest(new(Copy("b@beta.test")))
    assert [r.uid for r in await store.list_messages()] == [1, 2, 3]
    last = await store.last_id()
    assert await store.clear() == 3
    assert await store.list_messages() == []
    stored = await store.ingest(new(Copy("b@beta.test")))
    assert stored.copies[0].uid == 4, "RFC 3501: UIDs are never reused in a folder"
    assert stored.copies[0].entry_id > last, "ids are never reused, so 'after id N' stays true"


async def test_concurrent_ingests_share_commits_and_keep_uids_unique(store: SqliteStore) -> None:
    results = await asyncio.gather(
        *(store.ingest(new(Copy(f"u{i % 3}@beta.test"))) for i in range(300))
    )
    uids: dict[str, list[int]] = {}
    for r in results:
        uids.setdefault(r.copies[0].mailbox, []).append(r.copies[0].uid)
    for mailbox_uids in uids.values():
        assert sorted(mailbox_uids) == list(range(1, 101))


async def test_filters(store: SqliteStore) -> None:
    await store.ingest(
        new(Copy("b@beta.test"), raw=b"Subject: Welcome aboard\r\nFrom: x@alpha.test\r\n\r\n")
    )
    await store.ingest(
        new(Copy("c@gamma.test"), raw=b"Subject: 100% off_sale\r\n\r\n", sender="shop@real.example")
    )
    assert [r.mailbox for r in await store.list_messages(MessageFilter(to="B@BETA.TEST"))] == [
        "b@beta.test"
    ]
    assert [r.mailbox for r in await store.list_messages(MessageFilter(to="@gamma.test"))] == [
        "c@gamma.test"
    ]
    assert [r.mailbox for r in await store.list_messages(MessageFilter(to="gamma.test"))] == [
        "c@gamma.test"
    ]
    assert [r.mailbox for r in await store.list_messages(MessageFilter(sender="x@alpha.test"))] == [
        "b@beta.test"
    ]
    assert [r.mailbox for r in await store.list_messages(MessageFilter(sender="real.example"))] == [
        "c@gamma.test"
    ]
    assert [r.mailbox for r in await store.list_messages(MessageFilter(subject="welcome"))] == [
        "b@beta.test"
    ]
    # LIKE wildcards in the search text are taken literally
    assert [r.mailbox for r in await store.list_messages(MessageFilter(subject="0% off_"))] == [
        "c@gamma.test"
    ]
    assert await store.list_messages(MessageFilter(subject="%")) != []
    assert await store.list_messages(MessageFilter(subject="_x_")) == []


async def test_journey_in_time_order(store: SqliteStore) -> None:
    hops = (
        Hop("submitted", "accepted", {"client": "127.0.0.1:1"}, at=1.0),
        Hop("stored", "delivered", at=2.0),
    )
    stored = await store.ingest(
        NewMessage(RAW, "a@alpha.test", ("b@beta.test",), "test", (Copy("b@beta.test"),), hops)
    )
    await store.add_hops(stored.message_id, [Hop("read", "pop3", at=3.0)])
    assert [h.step for h in await store.journey(stored.message_id)] == [
        "submitted",
        "stored",
        "read",
    ]


async def test_a_failing_job_does_not_cost_the_others_their_data(store: SqliteStore) -> None:
    async def bad(conn) -> None:
        await conn.execute("INSERT INTO no_such_table VALUES (1)")

    good = [store.ingest(new(Copy("b@beta.test"))) for _ in range(5)]
    results = await asyncio.gather(*good[:2], store.write(bad), *good[2:], return_exceptions=True)
    assert isinstance(results[2], sqlite3.OperationalError)
    assert len(await store.list_messages()) == 5


async def test_folders_and_uidvalidity(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = await SqliteStore.open(str(path))
    await store.ingest(new(Copy("b@beta.test", "Archive/2026")))
    await store.close()
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT name, special_use, uidvalidity FROM folders ORDER BY id").fetchall()
    conn.close()
    # Two triggers make the default folders (0001, and 0020's Junk): their order is SQLite's.
    assert {r[0]: r[1] for r in rows} == {
        "INBOX": None,
        "Sent": "\\Sent",
        "Trash": "\\Trash",
        "Junk": "\\Junk",
        "Archive/2026": None,
    }
    assert rows[-1][0] == "Archive/2026"
    validities = [r[2] for r in rows]
    assert len(set(validities)) == 5 and all(0 < v < 2**32 for v in validities)


async def test_reopen_applies_no_migration_twice(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sqlite3")
    for _ in range(2):
        store = await SqliteStore.open(path)
        await store.ingest(new(Copy("b@beta.test")))
        await store.close()
    store = await SqliteStore.open(path)
    assert len(await store.list_messages()) == 2
    await store.close()


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_are_stored_and_listed(raw: bytes) -> None:
    async def run() -> None:
        store = await SqliteStore.open(":memory:")
        try:
            stored = await store.ingest(new(Copy("b@beta.test"), raw=raw))
            [record] = await store.list_messages()
            assert record.size == len(raw)
            assert await store.raw(stored.message_id) == raw
        finally:
            await store.close()

    asyncio.run(run())


async def test_prune_by_count_and_age_spares_recent_and_queued(store: SqliteStore) -> None:
    import time as clock

    from sandbox.store import NewDelivery

    now = clock.time()
    for i in range(5):
        await store.ingest(
            NewMessage(
                RAW,
                "a@alpha.test",
                ("b@beta.test",),
                "test",
                (Copy("b@beta.test"),),
                received_at=now - 3600 + i,
            )
        )
    queued = await store.ingest(
        NewMessage(
            RAW,
            "a@alpha.test",
            ("c@gamma.test",),
            "test",
            (),
            received_at=now - 3000,
            deliveries=(NewDelivery("gamma.test", ("c@gamma.test",)),),
        )
    )
    fresh = await store.ingest(
        NewMessage(
            RAW,
            "a@alpha.test",
            ("b@beta.test",),
            "test",
            (Copy("b@beta.test"),),
            received_at=now - 1,
        )
    )
    # keep the 2 newest (fresh and queued): the 5 old ones go
    assert await store.prune(max_messages=2, max_age=0, grace=60) == 5
    assert {r.message_id for r in await store.list_messages()} == {fresh.message_id}
    # the queued one is old enough to go by age, but the relay still needs it
    assert await store.prune(max_messages=0, max_age=600, grace=60) == 0
    assert await store.raw(queued.message_id) is not None
    # nothing inside the grace period goes, however small the limits
    assert await store.prune(max_messages=0, max_age=0.5, grace=60) == 0
    assert await store.prune(max_messages=1, max_age=0, grace=60) == 0


async def test_open_for_reading_reads_a_current_file_and_refuses_writes(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sqlite3")
    writer = await SqliteStore.open(path)
    try:
        await writer.ingest(new(Copy("b@beta.test", INBOX)))
        reader = await SqliteStore.open_for_reading(path)
        try:
            [record] = await reader.list_messages(MessageFilter())
            assert await reader.raw(record.message_id) == RAW
            with pytest.raises(StoreError, match="reading only"):
                await reader.clear()
            # The one connection sees what the writer commits after it opened.
            await writer.ingest(new(Copy("c@beta.test", INBOX)))
            assert len(await reader.list_messages(MessageFilter())) == 2
        finally:
            await reader.close()
    finally:
        await writer.close()


async def test_open_for_reading_migrates_a_file_that_is_not_current(tmp_path: Path) -> None:
    """A new file (like one an older sandbox made) gets the normal open, which migrates it."""
    path = str(tmp_path / "new.sqlite3")
    store = await SqliteStore.open_for_reading(path)
    try:
        assert await store.list_messages(MessageFilter()) == []
        await store.ingest(new(Copy("b@beta.test", INBOX)))  # a normal store: it writes
    finally:
        await store.close()
