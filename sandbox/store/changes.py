"""The ``changes`` table: the change feed's rows, written inside each change's transaction."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiosqlite

from sandbox.events import Event, event_payload, is_feed_event

T = TypeVar("T")
# A change for ``SqliteStore.commit``: runs in the write transaction, returns its result
# and the events it caused (recorded here in the same transaction, announced after).
CommitJob = Callable[[aiosqlite.Connection], Awaitable[tuple[T, Sequence[Event]]]]

# How many rows stay for processes that fall behind; one that falls further resyncs.
KEEP_ROWS = 20_000
TRIM_EVERY = 500  # rows written between trims


async def record(conn: aiosqlite.Connection, origin: str, events: Sequence[Event]) -> int:
    """Write the feed rows of ``events`` in the caller's transaction; returns how many."""
    rows = [
        (origin, e.at, e.kind, json.dumps(event_payload(e), default=str))
        for e in events
        if is_feed_event(e)
    ]
    if rows:
        await conn.executemany(
            "INSERT INTO changes (origin, at, kind, payload) VALUES (?, ?, ?, ?)", rows
        )
    return len(rows)


async def trim(conn: aiosqlite.Connection, keep: int = KEEP_ROWS) -> None:
    await conn.execute(
        "DELETE FROM changes WHERE seq <= (SELECT coalesce(max(seq), 0) FROM changes) - ?",
        (keep,),
    )


async def last_seq(conn: aiosqlite.Connection) -> int:
    rows = await conn.execute_fetchall(
        "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'changes'"
    )
    return int(next(iter(rows))[0])


async def data_version(conn: aiosqlite.Connection) -> int:
    rows = await conn.execute_fetchall("PRAGMA data_version")
    return int(next(iter(rows))[0])


async def since(
    conn: aiosqlite.Connection, seq: int, origin: str, limit: int = 1000
) -> tuple[int, int, list[tuple[int, str, dict[str, Any]]]]:
    """Rows after ``seq`` from other origins: (newest seq seen, oldest seq kept, rows).

    The newest seq counts this origin's rows too, so the cursor moves past them.
    """
    head = await conn.execute_fetchall(
        "SELECT coalesce(max(seq), 0), coalesce(min(seq), 0) FROM"
        " (SELECT seq FROM changes WHERE seq > ? ORDER BY seq LIMIT ?)",
        (seq, limit),
    )
    newest, oldest = (int(v) for v in next(iter(head)))
    if not newest:
        return seq, 0, []
    rows = await conn.execute_fetchall(
        "SELECT seq, kind, payload FROM changes WHERE seq > ? AND seq <= ? AND origin != ?"
        " ORDER BY seq",
        (seq, newest, origin),
    )
    return newest, oldest, [(int(r[0]), str(r[1]), json.loads(r[2])) for r in rows]
