"""Retention: prune old messages, never recent or still-queued ones."""

from __future__ import annotations

import json
import time

import aiosqlite

from sandbox.events import (
    Event,
    MessagesPruned,
)
from sandbox.store.changes import CommitJob


def prune(*, max_messages: int, max_age: float, grace: float) -> CommitJob[int]:
    """Delete the oldest messages beyond ``max_messages`` or older than ``max_age``
    seconds (0: no limit). Never one received in the last ``grace`` seconds, nor one
    the relay still has to deliver. Returns how many messages went."""
    now = time.time()

    async def job(conn: aiosqlite.Connection) -> tuple[int, tuple[Event, ...]]:
        keep_after = now - grace
        doomed: set[int] = set()
        if max_age > 0:
            rows = await conn.execute_fetchall(
                "SELECT id FROM messages WHERE received_at < ? AND received_at < ?",
                (now - max_age, keep_after),
            )
            doomed.update(int(r[0]) for r in rows)
        if max_messages > 0:
            rows = await conn.execute_fetchall(
                "SELECT id FROM messages WHERE received_at < ? AND id NOT IN"
                " (SELECT id FROM messages ORDER BY id DESC LIMIT ?)",
                (keep_after, max_messages),
            )
            doomed.update(int(r[0]) for r in rows)
        if not doomed:
            return 0, ()
        ids = json.dumps(sorted(doomed))
        # messages_keep_queued (0004) keeps what the relay still has to deliver.
        cur = await conn.execute(
            "DELETE FROM messages WHERE id IN (SELECT value FROM json_each(?))", (ids,)
        )
        count = cur.rowcount
        return count, (MessagesPruned(count=count),) if count else ()

    return job
