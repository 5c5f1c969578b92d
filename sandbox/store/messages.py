"""Messages and their copies: the rule for removing a copy, written once."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import aiosqlite

from sandbox.events import (
    DeliveriesQueued,
    EntriesExpunged,
    Event,
    FlagsChanged,
    MessagesCleared,
    MessageStored,
)
from sandbox.mime import HeaderSummary, summarize
from sandbox.store import dsn
from sandbox.store.changes import CommitJob
from sandbox.store.models import (
    DELIVERED,
    INBOX,
    NOT_DONE,
    QUEUED,
    SENT,
    TRASH,
    Hop,
    NewMessage,
    StoredCopy,
    StoredMessage,
    domain_of,
)
from sandbox.store.tags import tag_arrivals
from sandbox.store.uids import NEW_UIDVALIDITY

DEFAULT_FOLDERS = (INBOX, SENT, TRASH)


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
        # The copy check inside the id list: outside it, SQLite scans messages.
        "DELETE FROM messages WHERE id IN (SELECT value FROM json_each(?) AS j"
        " WHERE NOT EXISTS (SELECT 1 FROM entries WHERE message_id = j.value))",
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


def ingest_events(message: NewMessage, stored: StoredMessage) -> tuple[Event, ...]:
    """What storing a message announces: its copies, and the deliveries it queued."""
    events: list[Event] = []
    if stored.copies or not stored.duplicate:
        events.append(
            MessageStored(
                message_id=stored.message_id,
                entries=tuple((c.entry_id, c.mailbox, c.folder) for c in stored.copies),
                envelope_from=message.envelope_from,
                subject=stored.subject,
                source=message.source,
            )
        )
    if stored.delivery_ids:
        events.append(
            DeliveriesQueued(message_id=stored.message_id, delivery_ids=stored.delivery_ids)
        )
    return tuple(events)


Summarized = tuple[NewMessage, HeaderSummary]


def summarized(message: NewMessage) -> Summarized:
    """Parse the headers before the write transaction: the lock is held for inserts only."""
    return message, summarize(message.raw)


async def ingest_many(
    conn: aiosqlite.Connection, summarized_items: list[Summarized]
) -> list[StoredMessage]:
    """Insert a run of messages with a fixed number of statements, however many there are.

    Runs inside the writer's transaction (BEGIN IMMEDIATE), so nobody else can take ids
    or UIDs between the reads here and the inserts. MIME summaries come made
    (``summarized``), so the lock is held for the inserts alone.
    """
    items = [m for m, _ in summarized_items]
    summaries = [s for _, s in summarized_items]
    fulfilled = await fulfil_deliveries(conn, items)
    items = [
        replace(m, copies=tuple(c for c in m.copies if c.mailbox not in fulfilled.get(i, ())))
        if i in fulfilled
        else m
        for i, m in enumerate(items)
    ]
    duplicates = {i for i, m in enumerate(items) if i in fulfilled and not m.copies}
    if duplicates:
        kept = [i for i in range(len(items)) if i not in duplicates]
        stored_kept = (
            await _ingest_summarized(conn, [items[i] for i in kept], [summaries[i] for i in kept])
            if kept
            else []
        )
        by_index = dict(zip(kept, stored_kept, strict=True))
        return [
            by_index[i]
            if i in by_index
            else StoredMessage(0, (), summaries[i].subject, duplicate=True)
            for i in range(len(items))
        ]
    return await _ingest_summarized(conn, items, summaries)


async def _ingest_summarized(
    conn: aiosqlite.Connection, items: list[NewMessage], summaries: list[HeaderSummary]
) -> list[StoredMessage]:
    if not items:
        return []
    mailboxes = sorted({c.mailbox for m in items for c in m.copies})
    await conn.executemany(
        "INSERT INTO mailboxes (address, domain, created_at) VALUES (?, ?, ?)"
        " ON CONFLICT (address) DO NOTHING",
        [(m, domain_of(m), items[0].received_at) for m in mailboxes],
    )
    extra_folders = {(c.mailbox, c.folder) for m in items for c in m.copies} - {
        (mb, name) for mb in mailboxes for name in DEFAULT_FOLDERS
    }
    if extra_folders:
        await conn.executemany(
            "INSERT INTO folders (mailbox_id, name, uidvalidity)"
            f" SELECT id, ?, {NEW_UIDVALIDITY}"
            " FROM mailboxes WHERE address = ? ON CONFLICT (mailbox_id, name) DO NOTHING",
            [(folder, mailbox) for mailbox, folder in sorted(extra_folders)],
        )
    folder_rows = await conn.execute_fetchall(
        "SELECT f.id, f.uidnext, m.address, f.name FROM folders f"
        " JOIN mailboxes m ON m.id = f.mailbox_id"
        " WHERE m.address IN (SELECT value FROM json_each(?))",
        (json.dumps(mailboxes),),
    )
    folders = {(r[2], r[3]): [int(r[0]), int(r[1])] for r in folder_rows}
    id_rows = await conn.execute_fetchall(
        "SELECT (SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'messages'),"
        " (SELECT coalesce(max(id), 0) FROM messages),"
        " (SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'entries'),"
        " (SELECT coalesce(max(id), 0) FROM entries),"
        " (SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'deliveries')"
    )
    ids = next(iter(id_rows))
    next_message, next_entry = max(ids[0], ids[1]) + 1, max(ids[2], ids[3]) + 1
    next_delivery = ids[4] + 1

    message_rows: list[tuple[Any, ...]] = []
    delivery_rows: list[tuple[Any, ...]] = []
    entry_rows: list[tuple[Any, ...]] = []
    hop_rows: list[tuple[Any, ...]] = []
    stored: list[StoredMessage] = []
    for message, summary in zip(items, summaries, strict=True):
        message_id = next_message
        next_message += 1
        message_rows.append(
            (
                message_id,
                message.raw,
                len(message.raw),
                message.envelope_from,
                json.dumps(list(message.envelope_to)),
                summary.from_addr,
                json.dumps(list(summary.to)),
                json.dumps(list(summary.cc)),
                summary.subject,
                summary.date,
                summary.message_id,
                message.received_at,
                message.source,
                message.queue_id,
                message.parent_queue_id,
            )
        )
        delivery_ids = []
        for delivery in message.deliveries:
            delivery_rows.append(
                (
                    next_delivery,
                    message_id,
                    delivery.domain,
                    message.envelope_from,
                    json.dumps(list(delivery.recipients)),
                    QUEUED,
                    message.received_at,
                    message.received_at,
                    message.received_at,
                )
            )
            delivery_ids.append(next_delivery)
            next_delivery += 1
        copies = []
        for copy in message.copies:
            folder = folders[(copy.mailbox, copy.folder)]
            uid = folder[1]
            folder[1] += 1
            entry_rows.append(
                (
                    next_entry,
                    folder[0],
                    uid,
                    message_id,
                    " ".join(copy.flags),
                    int(copy.held),
                    message.received_at,
                )
            )
            copies.append(StoredCopy(next_entry, copy.mailbox, copy.folder, uid))
            next_entry += 1
        hop_rows += [_hop_row(message_id, hop) for hop in message.hops]
        stored.append(
            StoredMessage(message_id, tuple(copies), summary.subject, tuple(delivery_ids))
        )

    await conn.executemany(
        "INSERT INTO messages (id, raw, size, envelope_from, envelope_to, header_from,"
        " header_to, header_cc, subject, date, message_id, received_at, source, queue_id,"
        " parent_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
        " (SELECT max(id) FROM messages WHERE queue_id = ?))",
        message_rows,
    )
    if delivery_rows:
        await conn.executemany(
            "INSERT INTO deliveries (id, message_id, domain, envelope_from, recipients, state,"
            " next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            delivery_rows,
        )
        await dsn.save(conn, delivery_rows, [d for m in items for d in m.deliveries])
    await conn.executemany(
        "INSERT INTO entries (id, folder_id, uid, message_id, flags, held, added_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        entry_rows,
    )
    await tag_arrivals(conn, items, stored)  # Mailpit's X-Tags and plus-address tags
    if hop_rows:
        await conn.executemany(
            "INSERT INTO hops (message_id, at, step, outcome, detail) VALUES (?, ?, ?, ?, ?)",
            hop_rows,
        )
    return stored


def _hop_row(message_id: int, hop: Hop) -> tuple[Any, ...]:
    return (message_id, hop.at, hop.step, hop.outcome, json.dumps(dict(hop.detail)))


async def insert_hops(conn: aiosqlite.Connection, message_id: int, hops: Iterable[Hop]) -> None:
    await conn.executemany(
        "INSERT INTO hops (message_id, at, step, outcome, detail) VALUES (?, ?, ?, ?, ?)",
        [_hop_row(message_id, hop) for hop in hops],
    )


def clear(*, with_queue: bool = False) -> CommitJob[int]:
    """Delete every message copy; mailboxes and folders stay, so UIDs keep ascending.

    A message the relay still has to deliver stays (without copies) until it is
    delivered, unless ``with_queue`` drops those deliveries first. Returns how many
    copies went.
    """

    async def job(conn: aiosqlite.Connection) -> tuple[int, tuple[Event, ...]]:
        async with conn.execute("SELECT count(*) FROM entries") as cur:
            row = await cur.fetchone()
        if with_queue:
            await conn.execute("DELETE FROM deliveries WHERE state IN ('queued', 'deferred')")
        await conn.execute("DELETE FROM entries")
        # messages_keep_queued (0004) keeps the ones still queued; hops go with the rest.
        await conn.execute("DELETE FROM messages")
        count = int(row[0]) if row else 0
        return count, (MessagesCleared(count=count),)

    return job


def delete_entries(
    entry_ids: Sequence[int], origin: str = "tui"
) -> CommitJob[list[tuple[int, int, str, str]]]:
    """Delete these copies (``delete_copies``'s rule) and announce ``EntriesExpunged``.

    Returns (entry id, uid, mailbox, folder) of the copies deleted."""

    async def job(
        conn: aiosqlite.Connection,
    ) -> tuple[list[tuple[int, int, str, str]], tuple[Event, ...]]:
        gone = await delete_copies(conn, entry_ids)
        return [g[:4] for g in gone], expunged_events(gone, origin)

    return job


def set_seen(
    entry_ids: Sequence[int], seen: bool, origin: str = "tui"
) -> CommitJob[list[tuple[int, int, str, str, tuple[str, ...]]]]:
    """Add or remove ``\\Seen`` (RFC 3501 §2.3.2) on these copies and announce
    ``FlagsChanged``; returns the copies that changed as (entry id, uid, mailbox,
    folder, new flags)."""
    ids = json.dumps(sorted(set(entry_ids)))

    async def job(
        conn: aiosqlite.Connection,
    ) -> tuple[list[tuple[int, int, str, str, tuple[str, ...]]], tuple[Event, ...]]:
        rows = await conn.execute_fetchall(
            "SELECT e.id, e.uid, mb.address, f.name, e.flags FROM entries e"
            " JOIN folders f ON f.id = e.folder_id JOIN mailboxes mb ON mb.id = f.mailbox_id"
            " WHERE e.id IN (SELECT value FROM json_each(?))",
            (ids,),
        )
        changed: list[tuple[int, int, str, str, tuple[str, ...]]] = []
        for entry_id, uid, mailbox, folder, text in rows:
            current = tuple(str(text).split())
            has = any(f.lower() == "\\seen" for f in current)
            if has == seen:
                continue
            new = (
                (*current, "\\Seen") if seen else tuple(f for f in current if f.lower() != "\\seen")
            )
            changed.append((int(entry_id), int(uid), str(mailbox), str(folder), new))
        await conn.executemany(
            "UPDATE entries SET flags = ? WHERE id = ?",
            [(" ".join(c[4]), c[0]) for c in changed],
        )
        by_folder: dict[tuple[str, str], list[tuple[int, int, tuple[str, ...]]]] = {}
        for entry_id, uid, mailbox, folder, flags in changed:
            by_folder.setdefault((mailbox, folder), []).append((entry_id, uid, flags))
        events = tuple(
            FlagsChanged(mailbox, folder, tuple(items), origin=origin)
            for (mailbox, folder), items in by_folder.items()
        )
        return changed, events

    return job


async def fulfil_deliveries(
    conn: aiosqlite.Connection, items: list[NewMessage]
) -> dict[int, set[str]]:
    """Mark the relay deliveries that messages arriving at our own MX servers fulfil.

    For each such message (index in ``items``): the recipients its delivery had already
    delivered, whose copies must not be stored again. The delivery loses the recipients
    stored now, and is delivered once none is left, in this same commit: a crash after
    the MX server's 250 can no longer make the relay send it again.
    """
    done: dict[int, set[str]] = {}
    for index, message in enumerate(items):
        if message.delivered_for is None or message.parent_queue_id is None:
            continue
        rows = await conn.execute_fetchall(
            "SELECT d.id, d.recipients, d.state FROM deliveries d"
            " WHERE d.message_id = (SELECT max(id) FROM messages WHERE queue_id = ?)"
            " AND d.domain = ? ORDER BY d.state NOT IN ('queued', 'deferred'), d.id LIMIT 1",
            (message.parent_queue_id, message.delivered_for),
        )
        if not rows:
            continue  # not (or no longer) one of our queue's deliveries: store it as sent
        delivery_id, recipients_text, state = next(iter(rows))
        waiting = set(json.loads(recipients_text)) if state in NOT_DONE else set()
        wanted = {c.mailbox for c in message.copies}
        done[index] = wanted - waiting
        left = [r for r in json.loads(recipients_text) if r not in wanted] if waiting else []
        if waiting:
            await conn.execute(
                "UPDATE deliveries SET recipients = ?, state = ?, updated_at = ? WHERE id = ?",
                (json.dumps(left), state if left else DELIVERED, time.time(), delivery_id),
            )
    return done
