"""POP3's maildrops (RFC 1939): INBOX snapshots, wire sizes, and deletion to Trash.

A POP3 deletion moves the copy to the same mailbox's Trash with a new UID (so IMAP
clients and the TUI see it leave INBOX); it commits with its journey hops and is
announced as ``MessagesMoved`` plus per-folder ``EntriesExpunged``/``EntriesCopied``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiosqlite

from sandbox.events import EntriesCopied, EntriesExpunged, Event, MessagesMoved
from sandbox.store.folders import place_copies
from sandbox.store.messages import delete_copies
from sandbox.store.models import INBOX, TRASH, Hop, Outcome, Step
from sandbox.store.uids import NEW_UIDVALIDITY

if TYPE_CHECKING:
    from sandbox.store.sqlite import SqliteStore

# Octets on the wire without reading the blobs into Python: every bare LF becomes CRLF
# (one more octet each) and a message not ending in LF gets CRLF appended. Must agree with
# codec.to_wire; a property test checks it. It reads every blob (~100 ms for 10,000
# messages), so the backend keeps each message's result: a message never changes.
_WIRE_SIZE = (
    "length(m.raw)"
    " + (length(m.raw) - length(CAST(replace(m.raw, x'0a', x'') AS BLOB)))"
    " - (length(m.raw) - length(CAST(replace(m.raw, x'0d0a', x'') AS BLOB))) / 2"
    " + CASE WHEN length(m.raw) > 0 AND substr(m.raw, -1, 1) <> x'0a' THEN 2 ELSE 0 END"
)
_LIST_SQL = (
    "SELECT e.id, e.uid, f.uidvalidity, e.message_id"
    " FROM entries e JOIN folders f ON f.id = e.folder_id"
    " JOIN mailboxes mb ON mb.id = f.mailbox_id"
    " WHERE f.name = 'INBOX' {where} ORDER BY e.id"
)
_SIZES_SQL = (
    f"SELECT m.id, {_WIRE_SIZE} FROM messages m WHERE m.id IN (SELECT value FROM json_each(?))"
)


async def inbox(store: SqliteStore, address: str | None) -> list[tuple[int, int, int, int]]:
    """(entry id, uid, uidvalidity, message id) of one INBOX, or of every one (None)."""
    if address is None:
        rows = await store.fetchall(_LIST_SQL.format(where=""))
    else:
        rows = await store.fetchall(_LIST_SQL.format(where="AND mb.address = ?"), (address,))
    return [(int(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows]


async def wire_sizes(store: SqliteStore, message_ids: Sequence[int]) -> list[tuple[int, int]]:
    rows = await store.fetchall(_SIZES_SQL, (json.dumps(list(message_ids)),))
    return [(int(r[0]), int(r[1])) for r in rows]


async def raw_of_copies(store: SqliteStore, entry_ids: Sequence[int]) -> Mapping[int, bytes]:
    """Raw messages by entry id; copies removed meanwhile are left out."""
    rows = await store.fetchall(
        "SELECT e.id, m.raw FROM entries e JOIN messages m ON m.id = e.message_id"
        " WHERE e.id IN (SELECT value FROM json_each(?))",
        (json.dumps(list(entry_ids)),),
    )
    return {int(r[0]): bytes(r[1]) for r in rows}


def note_retrieved(store: SqliteStore, user: str, entry_ids: Sequence[int]) -> None:
    """Journey hops for a download under way, written in the background; the store has one
    writer, first come first served, so ``close``'s own write commits after this one."""
    store.write_later(_update_job(user, (), list(entry_ids)))


async def close(
    store: SqliteStore, user: str, deleted: Sequence[int], retrieved: Sequence[int]
) -> int:
    """UPDATE state (RFC 1939 §6): move ``deleted`` to Trash, note ``retrieved``; returns
    how many were moved."""
    job = _update_job(user, deleted, retrieved)

    async def announced(conn: aiosqlite.Connection) -> tuple[int, tuple[Event, ...]]:
        moves = await job(conn)
        return len(moves), _move_events(moves)

    return await store.commit(announced)


def _update_job(
    user: str, deleted: Sequence[int], retrieved: Sequence[int]
) -> Callable[[aiosqlite.Connection], Awaitable[list[Move]]]:
    async def job(conn: aiosqlite.Connection) -> list[Move]:
        if retrieved:  # before the move, while the entries still have their INBOX ids
            # One statement for a whole download: as _hop would write them, one at a time.
            await conn.execute(
                "INSERT INTO hops (message_id, at, step, outcome, detail)"
                " SELECT e.message_id, ?, 'pop3', 'retrieved',"
                " json_object('mailbox', mb.address, 'user', ?) FROM entries e"
                " JOIN folders f ON f.id = e.folder_id JOIN mailboxes mb ON mb.id = f.mailbox_id"
                " WHERE e.id IN (SELECT value FROM json_each(?)) ORDER BY e.id",
                (time.time(), user, json.dumps(list(retrieved))),
            )
        moves = await _move_to_trash(conn, list(deleted)) if deleted else []
        hops = [_hop(m.message_id, m.mailbox, user, Outcome.DELETED, folder=TRASH) for m in moves]
        if hops:
            await conn.executemany(
                "INSERT INTO hops (message_id, at, step, outcome, detail) VALUES (?, ?, ?, ?, ?)",
                hops,
            )
        return moves

    return job


@dataclass(frozen=True)
class Move:
    """One entry moved from INBOX to Trash."""

    old_id: int
    new_id: int
    mailbox: str
    message_id: int
    old_uid: int
    new_uid: int


def _move_events(moves: list[Move]) -> tuple[Event, ...]:
    """One summary for the journal and TUI; per-folder events for IMAP sessions."""
    if not moves:
        return ()
    events: list[Event] = [
        MessagesMoved(
            moves=tuple((m.old_id, m.new_id, m.mailbox, INBOX, TRASH) for m in moves),
            reason="pop3",
        )
    ]
    for mailbox in sorted({m.mailbox for m in moves}):
        mine = [m for m in moves if m.mailbox == mailbox]
        events.append(
            EntriesExpunged(
                mailbox=mailbox,
                folder=INBOX,
                entries=tuple((m.old_id, m.old_uid) for m in mine),
                origin="pop3",
            )
        )
        events.append(
            EntriesCopied(
                mailbox=mailbox,
                folder=TRASH,
                entries=tuple((m.new_id, m.new_uid, m.message_id) for m in mine),
                origin="pop3",
            )
        )
    return tuple(events)


def _hop(message_id: int, mailbox: str, user: str, outcome: str, **extra: str) -> tuple[Any, ...]:
    hop = Hop(Step.POP3, outcome, {"mailbox": mailbox, "user": user, **extra})
    return (message_id, hop.at, hop.step, hop.outcome, json.dumps(dict(hop.detail)))


async def _move_to_trash(conn: aiosqlite.Connection, entry_ids: list[int]) -> list[Move]:
    """Move INBOX entries to their mailbox's Trash; runs inside the writer's transaction.

    Entries no longer in INBOX (moved or expunged by IMAP meanwhile) are skipped.
    """
    rows = await conn.execute_fetchall(
        "SELECT e.id, e.message_id, e.flags, e.held, e.added_at, f.mailbox_id, mb.address, e.uid"
        " FROM entries e JOIN folders f ON f.id = e.folder_id"
        " JOIN mailboxes mb ON mb.id = f.mailbox_id"
        " WHERE e.id IN (SELECT value FROM json_each(?)) AND f.name = ? ORDER BY e.id",
        (json.dumps(entry_ids), INBOX),
    )
    found = list(rows)
    if not found:
        return []
    mailbox_ids = sorted({int(r[5]) for r in found})
    # Trash is made with every mailbox, but an IMAP client may have deleted it.
    await conn.executemany(
        "INSERT INTO folders (mailbox_id, name, special_use, uidvalidity)"
        f" SELECT ?, ?, '\\Trash', {NEW_UIDVALIDITY}"
        " ON CONFLICT (mailbox_id, name) DO NOTHING",
        [(mid, TRASH) for mid in mailbox_ids],
    )
    trash_rows = await conn.execute_fetchall(
        "SELECT mailbox_id, id FROM folders"
        " WHERE name = ? AND mailbox_id IN (SELECT value FROM json_each(?))",
        (TRASH, json.dumps(mailbox_ids)),
    )
    trash = {int(r[0]): int(r[1]) for r in trash_rows}
    placed = await place_copies(
        conn,
        [
            (int(r[0]), int(r[1]), str(r[2]), int(r[3]), float(r[4]), trash[int(r[5])])
            for r in found
        ],
    )
    moves = [
        Move(int(r[0]), new_id, str(r[6]), int(r[1]), int(r[7]), uid)
        for r, (_, new_id, uid) in zip(found, placed, strict=True)
    ]
    await delete_copies(conn, [m.old_id for m in moves])
    return moves
