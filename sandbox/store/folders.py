"""Folders and their UIDs: IMAP's view of mailboxes, and the rules every copy follows.

Functions here run on a connection the store hands in: readers on its read connection,
writers as jobs of ``SqliteStore.commit`` (they return their result and the events the
change announces). The IMAP backend asks for what it needs by name.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

from sandbox.events import EntriesCopied, EntriesExpunged, Event, FlagsChanged, FolderChanged
from sandbox.store.changes import CommitJob
from sandbox.store.messages import delete_copies, expunged_events
from sandbox.store.models import domain_of
from sandbox.store.uids import NEW_UIDVALIDITY

_CHUNK = 500  # ids per IN (...) query


@dataclass(frozen=True)
class Folder:
    id: int
    address: str
    name: str
    special_use: str | None
    uidvalidity: int
    uidnext: int
    subscribed: bool

    @property
    def key(self) -> tuple[str, str]:
        return (self.address, self.name)


@dataclass(frozen=True)
class Entry:
    """One message copy in a folder, as a selected session tracks it."""

    entry_id: int
    uid: int
    message_id: int
    flags: tuple[str, ...]


def chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


_FOLDER_SELECT = (
    "SELECT f.id, m.address, f.name, f.special_use, f.uidvalidity, f.uidnext,"
    " f.subscribed FROM folders f JOIN mailboxes m ON m.id = f.mailbox_id"
)


def _folder(row: Sequence[Any]) -> Folder:
    return Folder(
        id=int(row[0]),
        address=str(row[1]),
        name=str(row[2]),
        special_use=row[3],
        uidvalidity=int(row[4]),
        uidnext=int(row[5]),
        subscribed=bool(row[6]),
    )


# --- reads ------------------------------------------------------------------------------


async def mailbox_exists(conn: aiosqlite.Connection, address: str) -> bool:
    rows = await conn.execute_fetchall("SELECT 1 FROM mailboxes WHERE address = ?", (address,))
    return bool(list(rows))


async def list_folders(conn: aiosqlite.Connection, address: str | None) -> list[Folder]:
    """Every folder of one mailbox, or of all mailboxes (None)."""
    sql = _FOLDER_SELECT
    params: tuple[Any, ...] = ()
    if address is not None:
        sql += " WHERE m.address = ?"
        params = (address,)
    rows = await conn.execute_fetchall(sql + " ORDER BY m.address, f.name", params)
    return [_folder(row) for row in rows]


async def mailbox_addresses(conn: aiosqlite.Connection) -> list[str]:
    rows = await conn.execute_fetchall("SELECT address FROM mailboxes ORDER BY address")
    return [str(r[0]) for r in rows]


async def get_folder(conn: aiosqlite.Connection, address: str, name: str) -> Folder | None:
    rows = list(
        await conn.execute_fetchall(
            _FOLDER_SELECT + " WHERE m.address = ? AND f.name = ?", (address, name)
        )
    )
    return _folder(rows[0]) if rows else None


async def counts(
    conn: aiosqlite.Connection, folder_id: int, recent_after: int
) -> tuple[int, int, int]:
    """(messages, unseen, recent) for STATUS (RFC 3501 §6.3.10)."""
    rows = list(
        await conn.execute_fetchall(
            "SELECT count(*), coalesce(sum(instr(' ' || flags || ' ', ' \\Seen ') = 0), 0),"
            " coalesce(sum(uid > ?), 0) FROM entries WHERE folder_id = ?",
            (recent_after, folder_id),
        )
    )
    return int(rows[0][0]), int(rows[0][1]), int(rows[0][2])


async def stamp(conn: aiosqlite.Connection) -> tuple[int, int]:
    """Moves whenever anything commits: another connection (``data_version``) or this one."""
    rows = list(
        await conn.execute_fetchall(
            "SELECT (SELECT data_version FROM pragma_data_version), total_changes()"
        )
    )
    return int(rows[0][0]), int(rows[0][1])


async def entries(conn: aiosqlite.Connection, folder_id: int, after_uid: int = 0) -> list[Entry]:
    rows = await conn.execute_fetchall(
        "SELECT id, uid, message_id, flags FROM entries"
        " WHERE folder_id = ? AND uid > ? ORDER BY uid",
        (folder_id, after_uid),
    )
    # Most messages share a handful of flag strings: split each one once.
    split: dict[str, tuple[str, ...]] = {}
    out = []
    for entry_id, uid, message_id, text in rows:
        flags = split.get(text)
        if flags is None:
            flags = split[text] = tuple(str(text).split())
        out.append(Entry(entry_id, uid, message_id, flags))
    return out


async def sizes(
    conn: aiosqlite.Connection, message_ids: Sequence[int]
) -> list[tuple[int, int, float]]:
    """(message id, size, received at) of these messages."""
    rows = await conn.execute_fetchall(
        "SELECT id, size, received_at FROM messages WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(list(message_ids)),),
    )
    return [(int(r[0]), int(r[1]), float(r[2])) for r in rows]


async def uid_by_message_id(
    conn: aiosqlite.Connection, folder_id: int, message_id: str
) -> int | None:
    """The lowest UID in the folder of a message with this Message-ID header."""
    rows = await conn.execute_fetchall(
        "SELECT min(e.uid) FROM entries e JOIN messages m ON m.id = e.message_id"
        " WHERE e.folder_id = ? AND lower(trim(coalesce(m.message_id, ''), '<>')) = ?",
        (folder_id, message_id.strip().strip("<>").lower()),
    )
    first = next(iter(rows), None)
    return None if first is None or first[0] is None else int(first[0])


async def header_blocks(
    conn: aiosqlite.Connection, message_ids: Sequence[int]
) -> list[tuple[int, bytes]]:
    """Each message up to its blank line, without pulling whole messages out of SQLite."""
    rows = await conn.execute_fetchall(
        "SELECT id, CASE instr(raw, X'0D0A0D0A') WHEN 0 THEN raw"
        " ELSE substr(raw, 1, instr(raw, X'0D0A0D0A') + 3) END"
        " FROM messages WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(list(message_ids)),),
    )
    return [(int(r[0]), bytes(r[1])) for r in rows]


async def raws(conn: aiosqlite.Connection, message_ids: Sequence[int]) -> list[tuple[int, bytes]]:
    rows = await conn.execute_fetchall(
        "SELECT id, raw FROM messages WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(list(message_ids)),),
    )
    return [(int(r[0]), bytes(r[1])) for r in rows]


# --- changes (jobs for SqliteStore.commit) ------------------------------------------------


async def ensure_mailbox(conn: aiosqlite.Connection, address: str) -> tuple[None, tuple[()]]:
    """A mailbox springs into being at first login, like catch-all delivery makes it."""
    await conn.execute(
        "INSERT INTO mailboxes (address, domain, created_at)"
        " VALUES (?, ?, strftime('%s', 'now')) ON CONFLICT (address) DO NOTHING",
        (address, domain_of(address)),
    )
    return None, ()


def create(address: str, name: str, *, subscribed: bool) -> CommitJob[bool]:
    """False when it exists already. IMAP's CREATE does not subscribe (RFC 3501 §6.3.3)."""

    async def job(conn: aiosqlite.Connection) -> tuple[bool, tuple[Event, ...]]:
        await conn.execute(
            "INSERT INTO mailboxes (address, domain, created_at)"
            " VALUES (?, ?, strftime('%s', 'now')) ON CONFLICT (address) DO NOTHING",
            (address, domain_of(address)),
        )
        cursor = await conn.execute(
            "INSERT INTO folders (mailbox_id, name, uidvalidity, subscribed)"
            f" SELECT id, ?, {NEW_UIDVALIDITY}, ? FROM mailboxes WHERE address = ?"
            " ON CONFLICT (mailbox_id, name) DO NOTHING",
            (name, int(subscribed), address),
        )
        created = cursor.rowcount > 0
        return created, (FolderChanged(address, name, "created"),) if created else ()

    return job


def delete(folder: Folder, origin: str) -> CommitJob[None]:
    """The folder and its copies (a message stays while a delivery needs it)."""

    async def job(conn: aiosqlite.Connection) -> tuple[None, tuple[Event, ...]]:
        rows = await conn.execute_fetchall(
            "SELECT id FROM entries WHERE folder_id = ?", (folder.id,)
        )
        gone = await delete_copies(conn, [int(r[0]) for r in rows], folder.id)
        await conn.execute("DELETE FROM folders WHERE id = ?", (folder.id,))
        changed = FolderChanged(folder.address, folder.name, "deleted", origin=origin)
        return None, (*expunged_events(gone, origin), changed)

    return job


def rename(folder: Folder, new_name: str, origin: str) -> CommitJob[list[tuple[int, int]] | None]:
    """Rename a folder and its children (§6.3.5); INBOX moves its messages instead.

    None when ``new_name`` is taken; else the (entry id, uid) that left INBOX."""

    async def job(
        conn: aiosqlite.Connection,
    ) -> tuple[list[tuple[int, int]] | None, tuple[Event, ...]]:
        taken = await conn.execute_fetchall(
            "SELECT 1 FROM folders f JOIN mailboxes m ON m.id = f.mailbox_id"
            " WHERE m.address = ? AND f.name = ?",
            (folder.address, new_name),
        )
        if taken:
            return None, ()
        renamed = FolderChanged(
            folder.address, folder.name, "renamed", new_name=new_name, origin=origin
        )
        if folder.name == "INBOX":
            # §6.3.5: renaming INBOX moves its messages to a new folder; INBOX stays.
            cursor = await conn.execute(
                "INSERT INTO folders (mailbox_id, name, uidvalidity, uidnext)"
                f" SELECT mailbox_id, ?, {NEW_UIDVALIDITY}, uidnext FROM folders"
                " WHERE id = ?",
                (new_name, folder.id),
            )
            moved = await conn.execute_fetchall(
                "SELECT id, uid FROM entries WHERE folder_id = ?", (folder.id,)
            )
            await conn.execute(
                "UPDATE entries SET folder_id = ? WHERE folder_id = ?",
                (cursor.lastrowid, folder.id),
            )
            entries = tuple((int(r[0]), int(r[1])) for r in moved)
            events: tuple[Event, ...] = (renamed,)
            if entries:
                gone = EntriesExpunged(folder.address, folder.name, entries, origin=origin)
                events = (gone, renamed)
            return list(entries), events
        prefix = folder.name + "/"
        await conn.execute(
            "UPDATE folders SET name = ? || substr(name, ?) WHERE mailbox_id ="
            " (SELECT mailbox_id FROM folders WHERE id = ?) AND substr(name, 1, ?) = ?",
            (new_name + "/", len(prefix) + 1, folder.id, len(prefix), prefix),
        )
        await conn.execute("UPDATE folders SET name = ? WHERE id = ?", (new_name, folder.id))
        return [], (renamed,)

    return job


def set_subscribed(folder_id: int, subscribed: bool) -> CommitJob[None]:
    async def job(conn: aiosqlite.Connection) -> tuple[None, tuple[Event, ...]]:
        await conn.execute(
            "UPDATE folders SET subscribed = ? WHERE id = ?", (int(subscribed), folder_id)
        )
        return None, ()

    return job


def update_flags(
    folder: Folder,
    entry_ids: Sequence[int],
    merge_flags: Callable[[tuple[str, ...]], tuple[str, ...]],
    origin: str,
) -> CommitJob[dict[int, tuple[int, tuple[str, ...], bool]]]:
    """Read-modify-write in one transaction, so concurrent STOREs never lose a flag.

    Returns entry id → (uid, new flags, changed)."""

    async def job(
        conn: aiosqlite.Connection,
    ) -> tuple[dict[int, tuple[int, tuple[str, ...], bool]], tuple[Event, ...]]:
        result: dict[int, tuple[int, tuple[str, ...], bool]] = {}
        updates: list[tuple[str, int]] = []
        for chunk in chunks(entry_ids):
            rows = await conn.execute_fetchall(
                "SELECT id, uid, flags FROM entries WHERE folder_id = ?"
                " AND id IN (SELECT value FROM json_each(?))",
                (folder.id, json.dumps(list(chunk))),
            )
            for entry_id, uid, text in rows:
                current = tuple(str(text).split())
                new = merge_flags(current)
                changed = new != current
                result[int(entry_id)] = (int(uid), new, changed)
                if changed:
                    updates.append((" ".join(new), int(entry_id)))
        if not updates:
            return result, ()
        await conn.executemany("UPDATE entries SET flags = ? WHERE id = ?", updates)
        changes = tuple((eid, uid, new) for eid, (uid, new, ch) in result.items() if ch)
        event = FlagsChanged(folder.address, folder.name, changes, origin=origin)
        return result, (event,)

    return job


async def place_copies(
    conn: aiosqlite.Connection, copies: Sequence[tuple[int, int, str, int, float, int]]
) -> list[tuple[int, int, int]]:
    """New copies of existing messages: the one way a copy enters a folder after ingest.

    ``copies``: (source entry id, message id, flags, held, added at, target folder id), in
    order. Each target folder's new UIDs ascend from its uidnext in that order (RFC 3501
    §2.3.1.1; 0001's trigger moves uidnext on). A move is this and then ``delete_copies``
    of the sources, in the same transaction. Returns (source entry id, new entry id, new
    uid) of each.
    """
    if not copies:
        return []
    targets = sorted({c[5] for c in copies})
    rows = await conn.execute_fetchall(
        "SELECT id, uidnext FROM folders WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(targets),),
    )
    uidnext = {int(r[0]): int(r[1]) for r in rows}
    seq_rows = await conn.execute_fetchall(
        "SELECT max((SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'entries'),"
        " (SELECT coalesce(max(id), 0) FROM entries))"
    )
    next_entry = int(next(iter(seq_rows))[0]) + 1
    inserts: list[tuple[Any, ...]] = []
    placed: list[tuple[int, int, int]] = []
    for source_id, message_id, flags, held, added_at, target in copies:
        uid = uidnext[target]
        uidnext[target] = uid + 1
        inserts.append((next_entry, target, uid, message_id, flags, held, added_at))
        placed.append((source_id, next_entry, uid))
        next_entry += 1
    await conn.executemany(
        "INSERT INTO entries (id, folder_id, uid, message_id, flags, held, added_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        inserts,
    )
    return placed


def copy(
    source: Folder, entries: Sequence[Entry], target: Folder, *, move: bool, origin: str
) -> CommitJob[tuple[int, list[tuple[int, int, int, int]]]]:
    """Copy (or move) copies into ``target`` (RFC 3501 §6.4.7: flags go along, the new
    copies get ascending UIDs in one run); returns its UIDVALIDITY and (old uid, new uid,
    message id, new entry id) of each."""

    async def job(
        conn: aiosqlite.Connection,
    ) -> tuple[tuple[int, list[tuple[int, int, int, int]]], tuple[Event, ...]]:
        rows = list(
            await conn.execute_fetchall(
                "SELECT uidvalidity FROM folders WHERE id = ?", (target.id,)
            )
        )
        if not rows:
            raise LookupError(target.name)
        uidvalidity = int(rows[0][0])
        present: dict[int, tuple[int, str, int]] = {}
        for chunk in chunks([e.entry_id for e in entries]):
            found = await conn.execute_fetchall(
                "SELECT id, message_id, flags, held FROM entries WHERE folder_id = ?"
                " AND id IN (SELECT value FROM json_each(?))",
                (source.id, json.dumps(list(chunk))),
            )
            for r in found:
                present[int(r[0])] = (int(r[1]), str(r[2]), int(r[3]))
        now = time.time()
        wanted = [e for e in entries if e.entry_id in present]
        placed = await place_copies(
            conn, [(e.entry_id, *present[e.entry_id], now, target.id) for e in wanted]
        )
        # (old uid, new uid, message id, new entry id)
        pairs = [
            (e.uid, uid, present[e.entry_id][0], new_id)
            for e, (_, new_id, uid) in zip(wanted, placed, strict=True)
        ]
        deleted: list[tuple[int, int, str, str, int]] = []
        if move:
            deleted = await delete_copies(conn, [e.entry_id for e in wanted], source.id)
        events: list[Event] = []
        if pairs:
            copied = tuple((p[3], p[1], p[2]) for p in pairs)
            events.append(EntriesCopied(target.address, target.name, copied, origin=origin))
        events += expunged_events(deleted, origin)
        return (uidvalidity, pairs), tuple(events)

    return job
