"""Read views for the TUI: windows of the message list, folder counts, throughput.

Everything here is one SQL statement on the store's reader connection, bounded by a
LIMIT, so the UI never holds more than a window of a 100,000-message store. Newest
first means ``ORDER BY e.id DESC``: entry ids ascend with arrival and are never reused,
which also makes "everything newer than what I show" a simple ``e.id > ?``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sandbox.store.sqlite import SqliteStore

# A list state derived from the store, per copy:
#   held       the copy of a recipient outside the sandbox (entries.held)
#   bounce     the message is itself a bounce notice (a DSN: null reverse-path)
#   bounced    a relay delivery of it bounced
#   deferred   a delivery of it waits for a retry after a 4xx (queued: not tried yet)
#   delivered  anything else: it was stored where it belongs, and every delivery made it
HELD, BOUNCE, BOUNCED, DEFERRED, QUEUED, DELIVERED = (
    "held",
    "bounce",
    "bounced",
    "deferred",
    "queued",
    "delivered",
)


@dataclass(frozen=True)
class ListQuery:
    """Which copies the list shows: a place in the tree, plus the search terms."""

    domain: str | None = None
    mailbox: str | None = None
    folder: str | None = None
    held: bool = False
    sender: str | None = None
    to: str | None = None
    subject: str | None = None
    text: str | None = None  # any of from, to, subject, or the raw source (body)

    def with_search(self, terms: dict[str, str | None]) -> ListQuery:
        return ListQuery(
            self.domain,
            self.mailbox,
            self.folder,
            self.held,
            terms.get("from"),
            terms.get("to"),
            terms.get("subject"),
            terms.get("text"),
        )

    @property
    def searching(self) -> bool:
        return any((self.sender, self.to, self.subject, self.text))


@dataclass(frozen=True)
class Row:
    """One copy in the list."""

    id: int
    message_id: int
    mailbox: str
    folder: str
    flags: tuple[str, ...]
    held: bool
    sender: str
    to: tuple[str, ...]
    subject: str
    size: int
    received_at: float
    state: str
    envelope_to: tuple[str, ...] = field(default=())

    @property
    def seen(self) -> bool:
        return any(f.lower() == "\\seen" for f in self.flags)


_ROW_SELECT = (
    "SELECT e.id, e.message_id, mb.address, f.name, e.flags, e.held,"
    " coalesce(m.header_from, m.envelope_from), m.header_to, coalesce(m.subject, ''),"
    " m.size, m.received_at, m.envelope_from,"
    " (SELECT group_concat(d.state) FROM deliveries d WHERE d.message_id = m.id),"
    " m.envelope_to"
    " FROM entries e JOIN folders f ON f.id = e.folder_id"
    " JOIN mailboxes mb ON mb.id = f.mailbox_id JOIN messages m ON m.id = e.message_id"
)


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _where(query: ListQuery) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if query.held:
        clauses.append("e.held = 1")
    if query.domain:
        clauses.append("mb.domain = ?")
        params.append(query.domain)
    if query.mailbox:
        clauses.append("mb.address = ?")
        params.append(query.mailbox)
    if query.folder:
        clauses.append("f.name = ?")
        params.append(query.folder)
    if query.sender:
        clauses.append("(m.header_from LIKE ? ESCAPE '\\' OR m.envelope_from LIKE ? ESCAPE '\\')")
        params += [_like(query.sender)] * 2
    if query.to:
        clauses.append(
            "(m.header_to LIKE ? ESCAPE '\\' OR m.header_cc LIKE ? ESCAPE '\\'"
            " OR mb.address LIKE ? ESCAPE '\\')"
        )
        params += [_like(query.to)] * 3
    if query.subject:
        clauses.append("m.subject LIKE ? ESCAPE '\\'")
        params.append(_like(query.subject))
    if query.text:
        # The body is matched in the raw source (a LIKE over the stored bytes): text in
        # base64 or quoted-printable parts is not found; plain 7/8-bit parts are.
        clauses.append(
            "(m.header_from LIKE ? ESCAPE '\\' OR m.envelope_from LIKE ? ESCAPE '\\'"
            " OR m.header_to LIKE ? ESCAPE '\\' OR mb.address LIKE ? ESCAPE '\\'"
            " OR m.subject LIKE ? ESCAPE '\\' OR CAST(m.raw AS TEXT) LIKE ? ESCAPE '\\')"
        )
        params += [_like(query.text)] * 6
    return clauses, params


def _row(r: tuple[Any, ...]) -> Row:
    states = set(str(r[12]).split(",")) if r[12] else set()
    if r[5]:
        state = HELD
    elif r[11] == "":
        state = BOUNCE
    elif "bounced" in states:
        state = BOUNCED
    elif "deferred" in states:
        state = DEFERRED
    elif "queued" in states:
        state = QUEUED
    else:
        state = DELIVERED
    return Row(
        id=int(r[0]),
        message_id=int(r[1]),
        mailbox=str(r[2]),
        folder=str(r[3]),
        flags=tuple(str(r[4]).split()),
        held=bool(r[5]),
        sender=str(r[6] or "<>"),
        to=tuple(json.loads(r[7])),
        subject=str(r[8]),
        size=int(r[9]),
        received_at=float(r[10]),
        state=state,
        envelope_to=tuple(json.loads(r[13])),
    )


async def window(
    store: SqliteStore,
    query: ListQuery,
    *,
    limit: int,
    below: int | None = None,
    at_least: int | None = None,
) -> list[Row]:
    """Up to ``limit`` copies, newest first: older than ``below``, not older than ``at_least``."""
    clauses, params = _where(query)
    if below is not None:
        clauses.append("e.id < ?")
        params.append(below)
    if at_least is not None:
        clauses.append("e.id >= ?")
        params.append(at_least)
    sql = _ROW_SELECT
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += " ORDER BY e.id DESC LIMIT ?"
    params.append(limit)
    return [_row(r) for r in await store.fetchall(sql, params)]


async def count(store: SqliteStore, query: ListQuery) -> int:
    clauses, params = _where(query)
    if not clauses:
        rows = await store.fetchall("SELECT count(*) FROM entries")
    else:
        rows = await store.fetchall(
            "SELECT count(*) FROM entries e JOIN folders f ON f.id = e.folder_id"
            " JOIN mailboxes mb ON mb.id = f.mailbox_id JOIN messages m ON m.id = e.message_id"
            " WHERE " + " AND ".join(clauses),
            params,
        )
    return int(rows[0][0])


@dataclass(frozen=True)
class FolderCount:
    domain: str
    mailbox: str
    folder: str
    total: int
    unread: int


@dataclass(frozen=True)
class TreeCounts:
    folders: tuple[FolderCount, ...]
    total: int
    unread: int
    held: int
    held_unread: int


async def tree_counts(store: SqliteStore) -> TreeCounts:
    """Every folder with its message and unread counts (unread: no ``\\Seen``)."""
    rows = await store.fetchall(
        "SELECT mb.domain, mb.address, f.name, count(e.id),"
        " coalesce(sum(e.id IS NOT NULL AND instr(' ' || e.flags || ' ', ' \\Seen ') = 0), 0),"
        " coalesce(sum(e.held), 0),"
        " coalesce(sum(e.held AND instr(' ' || e.flags || ' ', ' \\Seen ') = 0), 0)"
        " FROM folders f JOIN mailboxes mb ON mb.id = f.mailbox_id"
        " LEFT JOIN entries e ON e.folder_id = f.id"
        " GROUP BY f.id ORDER BY mb.domain, mb.address, f.id"
    )
    folders = tuple(FolderCount(r[0], r[1], r[2], int(r[3]), int(r[4])) for r in rows)
    return TreeCounts(
        folders,
        total=sum(f.total for f in folders),
        unread=sum(f.unread for f in folders),
        held=sum(int(r[5]) for r in rows),
        held_unread=sum(int(r[6]) for r in rows),
    )


async def per_minute(store: SqliteStore, minutes: int = 30, now: float | None = None) -> list[int]:
    """Messages stored in each of the last ``minutes`` minutes, oldest first."""
    now = time.time() if now is None else now
    start = now - minutes * 60
    rows = await store.fetchall(
        "SELECT CAST((received_at - ?) / 60 AS INTEGER), count(*) FROM messages"
        " WHERE received_at >= ? GROUP BY 1",
        (start, start),
    )
    buckets = [0] * minutes
    for bucket, n in rows:
        if 0 <= int(bucket) < minutes:
            buckets[int(bucket)] = int(n)
    return buckets


async def envelope(store: SqliteStore, message_id: int) -> tuple[str, tuple[str, ...]] | None:
    rows = await store.fetchall(
        "SELECT envelope_from, envelope_to FROM messages WHERE id = ?", (message_id,)
    )
    if not rows:
        return None
    return str(rows[0][0]), tuple(json.loads(rows[0][1]))


async def entry_ids(
    store: SqliteStore, *, mailbox: str | None = None, folder: str | None = None
) -> list[int]:
    """The copies of a mailbox (or one of its folders), for clearing it."""
    sql = (
        "SELECT e.id FROM entries e JOIN folders f ON f.id = e.folder_id"
        " JOIN mailboxes mb ON mb.id = f.mailbox_id WHERE mb.address = ?"
    )
    params: list[Any] = [mailbox]
    if folder is not None:
        sql += " AND f.name = ?"
        params.append(folder)
    return [int(r[0]) for r in await store.fetchall(sql, params)]


async def journal_signature(store: SqliteStore) -> tuple[Any, ...]:
    """Changes anywhere another process can make them, in one cheap query (attached mode)."""
    rows = await store.fetchall(
        "SELECT (SELECT coalesce(max(id), 0) FROM events),"
        " (SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'entries'),"
        " (SELECT count(*) FROM entries),"
        " (SELECT coalesce(max(updated_at), 0) FROM deliveries),"
        " (SELECT count(*) FROM deliveries WHERE state IN ('queued', 'deferred'))"
    )
    return tuple(rows[0])


async def matching_entry_ids(store: SqliteStore, query: ListQuery) -> list[int]:
    """Every copy the list shows for ``query`` (a place in the tree), for deleting them."""
    clauses, params = _where(query)
    sql = (
        "SELECT e.id FROM entries e JOIN folders f ON f.id = e.folder_id"
        " JOIN mailboxes mb ON mb.id = f.mailbox_id JOIN messages m ON m.id = e.message_id"
    )
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    return [int(r[0]) for r in await store.fetchall(sql, params)]


async def waiting_deliveries(store: SqliteStore) -> int:
    """Relay deliveries not done yet: queued, or deferred until a retry."""
    rows = await store.fetchall(
        "SELECT count(*) FROM deliveries WHERE state IN ('queued', 'deferred')"
    )
    return int(rows[0][0])


async def log_start(store: SqliteStore, kinds: Iterable[str], rows: int) -> int:
    """The event id just before the newest ``rows`` events of ``kinds`` (0 when none):
    where a log screen starts reading on its first load."""
    found = await store.fetchall(
        "SELECT min(id) FROM (SELECT id FROM events WHERE kind IN"
        " (SELECT value FROM json_each(?)) ORDER BY id DESC LIMIT ?)",
        (json.dumps(sorted(kinds)), rows),
    )
    return int(found[0][0]) - 1 if found[0][0] else 0
