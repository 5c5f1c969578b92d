"""Tags on message copies, as Mailpit has them: set by the HTTP API, by an ``X-Tags``
header and by plus-addressing (``larry+invoices@beta.test`` tags the copy ``invoices``).

A tag is letters, digits, ``-``, ``.``, ``_`` and spaces (Mailpit strips anything else);
tags compare without regard to case, the first spelling seen is kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import aiosqlite

from sandbox.events import Event, TagsChanged
from sandbox.mime import header_block
from sandbox.store.models import NewMessage, StoredMessage

if TYPE_CHECKING:  # the store's ingest calls tag_arrivals: no import cycle at run time
    from sandbox.store.sqlite import SqliteStore

_NOT_TAG = re.compile(r"[^a-zA-Z0-9\-._ ]")


def clean_tags(raw: Iterable[str]) -> list[str]:
    """Valid, de-duplicated tags in their first spelling; empty ones dropped."""
    seen: dict[str, str] = {}
    for tag in raw:
        cleaned = " ".join(_NOT_TAG.sub("", tag).split())
        if cleaned and cleaned.lower() not in seen:
            seen[cleaned.lower()] = cleaned
    return list(seen.values())


def arrival_tags(message: NewMessage, mailbox: str) -> list[str]:
    """Tags a copy gets when it arrives: ``X-Tags`` (comma-separated) and plus-addresses."""
    found: list[str] = []
    for line in _unfolded(header_block(message.raw)):
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() == "x-tags":
            found += value.split(",")
    for address in (mailbox, *message.envelope_to):
        local = address.rpartition("@")[0]
        if "+" in local:
            found.append(local.split("+", 1)[1])
    return clean_tags(found)


def _unfolded(block: bytes) -> list[str]:
    lines: list[str] = []
    for raw in block.decode("utf-8", "replace").splitlines():
        if raw[:1] in (" ", "\t") and lines:
            lines[-1] += " " + raw.strip()
        elif raw.strip():
            lines.append(raw)
    return lines


async def tag_arrivals(
    conn: aiosqlite.Connection, items: Sequence[NewMessage], stored: Sequence[StoredMessage]
) -> None:
    """Inside the ingest transaction: the arrival tags of every new copy."""
    rows = [
        (copy.entry_id, tag)
        for message, result in zip(items, stored, strict=True)
        for copy in result.copies
        for tag in arrival_tags(message, copy.mailbox)
    ]
    if rows:
        await conn.executemany(
            "INSERT OR IGNORE INTO entry_tags (entry_id, tag) VALUES (?, ?)", rows
        )


async def set_tags(store: SqliteStore, entry_ids: Sequence[int], tags: Sequence[str]) -> list[int]:
    """Replace the tags of these copies; returns the ids that exist."""
    known = await _known_spellings(store, clean_tags(tags))
    wanted = [known.get(tag.lower(), tag) for tag in clean_tags(tags)]
    ids = sorted(set(entry_ids))

    async def job(conn: aiosqlite.Connection) -> tuple[list[int], list[Event]]:
        existing = await _existing(conn, ids)
        if not existing:
            return [], []
        marks = ",".join("?" * len(existing))
        await conn.execute(f"DELETE FROM entry_tags WHERE entry_id IN ({marks})", existing)
        await conn.executemany(
            "INSERT INTO entry_tags (entry_id, tag) VALUES (?, ?)",
            [(entry_id, tag) for entry_id in existing for tag in wanted],
        )
        return existing, await _changed(conn, existing)

    return await store.commit(job)


async def _changed(conn: aiosqlite.Connection, ids: Sequence[int]) -> list[Event]:
    """The ``TagsChanged`` of a tag job, read in its transaction so it travels the feed."""
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    rows = await conn.execute_fetchall(
        f"SELECT entry_id, tag FROM entry_tags WHERE entry_id IN ({marks}) ORDER BY tag",
        list(ids),
    )
    now: dict[int, list[str]] = {}
    for entry_id, tag in rows:
        now.setdefault(int(entry_id), []).append(str(tag))
    return [TagsChanged(entries=tuple((i, tuple(now.get(i, ()))) for i in ids))]


async def _known_spellings(store: SqliteStore, tags: Sequence[str]) -> dict[str, str]:
    """An existing tag keeps its spelling: setting ``Invoices`` on a copy reuses ``invoices``."""
    if not tags:
        return {}
    rows = await store.fetchall("SELECT DISTINCT tag FROM entry_tags")
    lowered = {tag.lower() for tag in tags}
    return {str(r[0]).lower(): str(r[0]) for r in rows if str(r[0]).lower() in lowered}


async def _existing(conn: aiosqlite.Connection, ids: list[int]) -> list[int]:
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    rows = await conn.execute_fetchall(f"SELECT id FROM entries WHERE id IN ({marks})", ids)
    return sorted(int(r[0]) for r in rows)


async def rename_tag(store: SqliteStore, old: str, new: str) -> list[int]:
    """Rename a tag everywhere (merging into ``new`` where a copy has both)."""
    cleaned = clean_tags([new])
    if not cleaned:
        raise ValueError("the new tag name has no valid characters (a-z A-Z 0-9 - . _ space)")
    target = cleaned[0]

    async def job(conn: aiosqlite.Connection) -> tuple[list[int], list[Event]]:
        rows = await conn.execute_fetchall(
            "SELECT entry_id FROM entry_tags WHERE lower(tag) = lower(?)", (old,)
        )
        ids = [int(r[0]) for r in rows]
        await conn.execute("DELETE FROM entry_tags WHERE lower(tag) = lower(?)", (old,))
        await conn.executemany(
            "INSERT OR IGNORE INTO entry_tags (entry_id, tag) VALUES (?, ?)",
            [(entry_id, target) for entry_id in ids],
        )
        return ids, await _changed(conn, ids)

    return await store.commit(job)


async def delete_tag(store: SqliteStore, tag: str) -> list[int]:
    """Remove a tag from every copy (the copies stay); returns the copies that had it."""

    async def job(conn: aiosqlite.Connection) -> tuple[list[int], list[Event]]:
        rows = await conn.execute_fetchall(
            "SELECT entry_id FROM entry_tags WHERE lower(tag) = lower(?)", (tag,)
        )
        await conn.execute("DELETE FROM entry_tags WHERE lower(tag) = lower(?)", (tag,))
        ids = [int(r[0]) for r in rows]
        return ids, await _changed(conn, ids)

    return await store.commit(job)


async def tags_of(store: SqliteStore, entry_ids: Sequence[int]) -> dict[int, list[str]]:
    if not entry_ids:
        return {}
    marks = ",".join("?" * len(entry_ids))
    rows = await store.fetchall(
        f"SELECT entry_id, tag FROM entry_tags WHERE entry_id IN ({marks}) ORDER BY tag",
        list(entry_ids),
    )
    result: dict[int, list[str]] = {}
    for entry_id, tag in rows:
        result.setdefault(int(entry_id), []).append(str(tag))
    return result


async def all_tags(store: SqliteStore) -> dict[str, int]:
    """Every tag in use with how many copies carry it, sorted by name."""
    rows = await store.fetchall(
        "SELECT tag, count(*) FROM entry_tags GROUP BY tag ORDER BY lower(tag)"
    )
    return {str(r[0]): int(r[1]) for r in rows}
