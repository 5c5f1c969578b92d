"""Messages and their copies: the rule for removing a copy, written once."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import aiosqlite

from sandbox.events import EntriesExpunged


async def delete_copies(
    conn: aiosqlite.Connection, entry_ids: Sequence[int], folder_id: int | None = None
) -> list[tuple[int, int, str, str, int]]:
    """Delete message copies; the one rule for every path that removes a copy.

    A message goes with its last copy, unless something still needs it: the relay's
    queued or deferred deliveries always do (``messages_keep_queued``, 0004), so a
    delivery waiting on a greylist survives its sender expunging the Sent copy. Only
    copies in ``folder_id`` when given. Returns (entry id, uid, mailbox, folder, message
    id) of the copies deleted.
    """
    ids = json.dumps(sorted(set(entry_ids)))
    where = "e.id IN (SELECT value FROM json_each(?))"
    params: tuple[Any, ...] = (ids,)
    if folder_id is not None:
        where += " AND e.folder_id = ?"
        params = (ids, folder_id)
    rows = await conn.execute_fetchall(
        "SELECT e.id, e.uid, mb.address, f.name, e.message_id FROM entries e"
        " JOIN folders f ON f.id = e.folder_id JOIN mailboxes mb ON mb.id = f.mailbox_id"
        f" WHERE {where} ORDER BY e.id",
        params,
    )
    gone = [(int(r[0]), int(r[1]), str(r[2]), str(r[3]), int(r[4])) for r in rows]
    if not gone:
        return []
    await conn.execute(
        "DELETE FROM entries WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps([g[0] for g in gone]),),
    )
    await drop_orphans(conn, [g[4] for g in gone])
    return gone


async def drop_orphans(conn: aiosqlite.Connection, message_ids: Iterable[int]) -> None:
    """Messages no copy refers to any more go (their hops with them), unless still queued."""
    await conn.execute(
        "DELETE FROM messages WHERE id IN (SELECT value FROM json_each(?))"
        " AND NOT EXISTS (SELECT 1 FROM entries WHERE message_id = messages.id)",
        (json.dumps(sorted(set(message_ids))),),
    )


def expunged_events(
    gone: Sequence[tuple[int, int, str, str, int]], origin: str
) -> tuple[EntriesExpunged, ...]:
    """One ``EntriesExpunged`` per folder for copies ``delete_copies`` removed."""
    by_folder: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for entry_id, uid, mailbox, folder, _ in gone:
        by_folder.setdefault((mailbox, folder), []).append((entry_id, uid))
    return tuple(
        EntriesExpunged(mailbox, folder, tuple(items), origin=origin)
        for (mailbox, folder), items in by_folder.items()
    )
