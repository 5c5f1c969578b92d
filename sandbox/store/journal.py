"""The events journal: SMTP sessions, DNS queries, relay attempts; capped."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiosqlite


async def events(
    conn: aiosqlite.Connection, *, kind: str | None = None, after_id: int = 0, limit: int = 1000
) -> list[tuple[int, float, str, dict[str, Any]]]:
    sql = "SELECT id, at, kind, data FROM events WHERE id > ?"
    params: list[Any] = [after_id]
    if kind is not None:
        sql += " AND kind = ?"
        params.append(kind)
    sql += " ORDER BY id LIMIT ?"
    params.append(limit)
    rows = await conn.execute_fetchall(sql, params)
    return [(r[0], r[1], r[2], json.loads(r[3])) for r in rows]


def trim_journal(keep: int) -> Callable[[aiosqlite.Connection], Awaitable[int]]:
    """Keep the newest ``keep`` rows of the events journal; returns how many went."""

    async def job(conn: aiosqlite.Connection) -> int:
        cur = await conn.execute(
            "DELETE FROM events WHERE id <= (SELECT coalesce(max(id), 0) FROM events) - ?",
            (keep,),
        )
        return cur.rowcount

    return job


async def insert(conn: aiosqlite.Connection, rows: Sequence[tuple[float, str, str]]) -> None:
    """Rows of (at, kind, JSON data), buffered by the store and written a batch at a time."""
    await conn.executemany("INSERT INTO events (at, kind, data) VALUES (?, ?, ?)", rows)
