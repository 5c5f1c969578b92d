"""Read views: message listings, single copies, raw bytes and journeys (CLI, TUI, tests)."""

from __future__ import annotations

import json
from typing import Any

import aiosqlite

from sandbox.store.models import (
    Hop,
    MessageFilter,
    MessageRecord,
    normalize_address,
)

ALL = MessageFilter()


_RECORD_SELECT = (
    "SELECT e.id, e.message_id, mb.address, f.name, e.uid, e.flags, e.held, m.header_from,"
    " m.header_to, m.header_cc, m.subject, m.date, m.message_id, m.size, m.received_at,"
    " m.envelope_from"
    " FROM entries e JOIN folders f ON f.id = e.folder_id"
    " JOIN mailboxes mb ON mb.id = f.mailbox_id JOIN messages m ON m.id = e.message_id"
)


def _record(row: Any) -> MessageRecord:
    return MessageRecord(
        id=row[0],
        message_id=row[1],
        mailbox=row[2],
        folder=row[3],
        uid=row[4],
        flags=tuple(row[5].split()),
        held=bool(row[6]),
        from_addr=row[7],
        to=tuple(json.loads(row[8])),
        cc=tuple(json.loads(row[9])),
        subject=row[10],
        date=row[11],
        header_message_id=row[12],
        size=row[13],
        received_at=row[14],
        envelope_from=row[15],
    )


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _filter_sql(flt: MessageFilter) -> tuple[str, list[Any]]:
    clauses = ["e.id > ?"]
    params: list[Any] = [flt.after_id]
    if flt.to:
        to = normalize_address(flt.to)
        if "@" in to and not to.startswith("@"):
            clauses.append("mb.address = ?")
            params.append(to)
        else:
            clauses.append("mb.domain = ?")
            params.append(to.lstrip("@"))
    if flt.sender:
        sender = normalize_address(flt.sender)
        if "@" in sender and not sender.startswith("@"):
            clauses.append("(lower(m.header_from) = ? OR lower(m.envelope_from) = ?)")
            params += [sender, sender]
        else:
            pattern = "%@" + _like_escape(sender.lstrip("@"))
            clauses.append(
                "(lower(m.header_from) LIKE ? ESCAPE '\\'"
                " OR lower(m.envelope_from) LIKE ? ESCAPE '\\')"
            )
            params += [pattern, pattern]
    if flt.subject:
        clauses.append("m.subject LIKE ? ESCAPE '\\'")
        params.append("%" + _like_escape(flt.subject) + "%")
    if flt.folder:
        clauses.append("f.name = ?")
        params.append(flt.folder)
    return " WHERE " + " AND ".join(clauses), params


async def list_messages(
    conn: aiosqlite.Connection, flt: MessageFilter = ALL, *, limit: int | None = None
) -> list[MessageRecord]:
    where, params = _filter_sql(flt)
    sql = _RECORD_SELECT + where + " ORDER BY e.id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    rows = await conn.execute_fetchall(sql, params)
    return [_record(row) for row in rows]


async def newest_message(
    conn: aiosqlite.Connection, flt: MessageFilter = ALL
) -> MessageRecord | None:
    where, params = _filter_sql(flt)
    rows = await conn.execute_fetchall(
        _RECORD_SELECT + where + " ORDER BY e.id DESC LIMIT 1", params
    )
    return _record(next(iter(rows))) if rows else None


async def last_id(conn: aiosqlite.Connection) -> int:
    """The highest message copy id ever given (ids are never reused)."""
    rows = await conn.execute_fetchall(
        "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'entries'"
    )
    return int(next(iter(rows))[0])


async def get_message(conn: aiosqlite.Connection, entry_id: int) -> MessageRecord | None:
    rows = await conn.execute_fetchall(_RECORD_SELECT + " WHERE e.id = ?", (entry_id,))
    return _record(next(iter(rows))) if rows else None


async def raw(conn: aiosqlite.Connection, message_id: int) -> bytes | None:
    rows = await conn.execute_fetchall("SELECT raw FROM messages WHERE id = ?", (message_id,))
    return bytes(next(iter(rows))[0]) if rows else None


async def journey(
    conn: aiosqlite.Connection, message_id: int, domain: str | None = None
) -> tuple[Hop, ...]:
    """The hops of a message and of the messages it was relayed from, in time order.

    With ``domain``, an ancestor's hops about other domains' deliveries are left out:
    the copy in larry@beta.test does not need gamma.test's retries.
    """
    rows = await conn.execute_fetchall(
        "WITH RECURSIVE chain (id, depth) AS (SELECT ?, 0 UNION ALL"
        " SELECT m.parent_id, c.depth + 1 FROM messages m JOIN chain c ON m.id = c.id"
        " WHERE m.parent_id IS NOT NULL AND c.depth < 30)"
        " SELECT h.step, h.outcome, h.detail, h.at, c.depth FROM hops h"
        " JOIN chain c ON h.message_id = c.id ORDER BY h.at, h.id",
        (message_id,),
    )
    hops = []
    for step, outcome, detail_text, at, depth in rows:
        detail = json.loads(detail_text)
        if depth and domain is not None and detail.get("domain") not in (None, domain):
            continue
        hops.append(Hop(step, outcome, detail, at))
    return tuple(hops)


async def count_messages(conn: aiosqlite.Connection) -> int:
    rows = await conn.execute_fetchall("SELECT count(*) FROM entries")
    return int(next(iter(rows))[0])
