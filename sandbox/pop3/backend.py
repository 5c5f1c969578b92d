"""What the POP3 session needs from the store, and the implementation over SQLite.

A maildrop is one mailbox's INBOX (or every INBOX, for the user ``all``), snapshotted at
login: RFC 1939 §4 numbers messages from 1 for the whole session, so messages arriving
later are not seen until the next login. A POP3 deletion moves the entry to the same
mailbox's Trash with a new UID, so IMAP clients and the TUI see it leave INBOX.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import aiosqlite

from sandbox.config import Config
from sandbox.events import EntriesCopied, EntriesExpunged, Event, MessagesMoved
from sandbox.store import INBOX, TRASH, Hop, SqliteStore, normalize_address

ALL_USER = "all"
# How many messages one read fetches: RETR of message n prefetches n+1, n+2, ... since
# clients download in order; bounded in bytes so a run of large messages stays cheap.
FETCH_BATCH = 64
FETCH_BATCH_BYTES = 4 * 1024 * 1024
# Retrievals are written to the journeys in runs of this many while a download goes on,
# so that QUIT has only the last few left to write.
JOURNAL_BATCH = 256


class MaildropInUse(Exception):
    """Another session holds this maildrop (RFC 2449 §8.1.1 [IN-USE])."""


class MaildropEntry(NamedTuple):  # a tuple: 10,000 of them are made at each login
    entry_id: int
    uid: int
    uidvalidity: int
    size: int  # octets on the wire: CRLF line endings, before dot-stuffing
    message_id: int


class Maildrop(Protocol):
    """One user's messages for one session; ``close`` must be called however it ends."""

    @property
    def entries(self) -> Sequence[MaildropEntry]: ...

    async def fetch(self, entry_ids: Sequence[int]) -> Mapping[int, bytes]:
        """Raw messages by entry id; ids removed meanwhile (by IMAP) are left out."""
        ...

    def note_retrieved(self, entry_ids: Sequence[int]) -> None:
        """Record these retrievals in the journeys in the background; ``close`` waits
        for them, so they are written by the time it returns."""
        ...

    async def close(self, *, deleted: Sequence[int] = (), retrieved: Sequence[int] = ()) -> int:
        """End the session: move ``deleted`` to Trash (UPDATE state only), note the
        retrievals in the journeys, release the lock; returns how many were moved."""
        ...


class Pop3Backend(Protocol):
    def check_login(self, user: str, password: str) -> bool: ...

    def check_apop(self, user: str, timestamp: str, digest: str) -> bool: ...

    async def open_maildrop(self, user: str) -> Maildrop:
        """Lock and snapshot the maildrop; raise MaildropInUse when another session has it."""
        ...


def apop_digest(timestamp: str, secret: str) -> str:
    """RFC 1939 §7: MD5 of the greeting's timestamp followed by the shared secret."""
    return hashlib.md5((timestamp + secret).encode(), usedforsecurity=False).hexdigest()


def canonical_user(user: str) -> str:
    name = normalize_address(user)
    return ALL_USER if name == ALL_USER else name


# --- over the store -----------------------------------------------------------------------

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
# Wire sizes kept, at most: about 100 bytes each.
MAX_SIZES_KEPT = 500_000


class StorePop3Backend:
    """POP3 over the sandbox store; logins follow DESIGN.md (any password unless accounts)."""

    def __init__(self, store: SqliteStore, config: Config) -> None:
        self.store = store  # announces its changes on store.bus
        self._accounts = {normalize_address(a.address): a.password for a in config.accounts}
        self._locked: set[str] = set()
        self._wire_sizes: dict[int, int] = {}  # by message id

    def check_login(self, user: str, password: str) -> bool:
        if not self._accounts:
            return True
        expected = self._accounts.get(canonical_user(user))
        return expected is not None and secrets.compare_digest(expected.encode(), password.encode())

    def check_apop(self, user: str, timestamp: str, digest: str) -> bool:
        if not self._accounts:
            return True
        expected = self._accounts.get(canonical_user(user))
        if expected is None:
            return False
        return secrets.compare_digest(apop_digest(timestamp, expected), digest.lower())

    async def open_maildrop(self, user: str) -> StoreMaildrop:
        name = canonical_user(user)
        # `all` overlaps every maildrop, so it excludes and is excluded by any other.
        if name in self._locked or ALL_USER in self._locked or (name == ALL_USER and self._locked):
            raise MaildropInUse(name)
        self._locked.add(name)
        try:
            params: tuple[str, ...] = ()
            if name == ALL_USER:
                sql = _LIST_SQL.format(where="")
            else:
                sql = _LIST_SQL.format(where="AND mb.address = ?")
                params = (name,)
            rows = await self.store.fetchall(sql, params)
            sizes = await self._sizes([r[3] for r in rows])
        except BaseException:
            self._locked.discard(name)
            raise
        entries = [MaildropEntry(r[0], r[1], r[2], sizes[r[3]], r[3]) for r in rows]
        return StoreMaildrop(self, name, entries)

    async def _sizes(self, message_ids: list[int]) -> dict[int, int]:
        """Wire sizes by message id: computed in SQL once per message, then remembered."""
        known = self._wire_sizes
        missing = [m for m in message_ids if m not in known]
        if missing:
            rows = await self.store.fetchall(_SIZES_SQL, (json.dumps(missing),))
            if len(known) + len(rows) > MAX_SIZES_KEPT:
                known.clear()  # deleted messages' sizes go too
            known.update((int(r[0]), int(r[1])) for r in rows)
            for m in missing:
                if m not in known:  # deleted meanwhile: LIST shows it, RETR says it is gone
                    known[m] = 0
        return known

    def _release(self, name: str) -> None:
        self._locked.discard(name)


class StoreMaildrop:
    def __init__(self, backend: StorePop3Backend, user: str, entries: list[MaildropEntry]) -> None:
        self._backend = backend
        self.user = user
        self.entries: Sequence[MaildropEntry] = entries
        self._closed = False
        self._noted = False  # note_retrieved queued writes: close waits for them

    async def fetch(self, entry_ids: Sequence[int]) -> Mapping[int, bytes]:
        rows = await self._backend.store.fetchall(
            "SELECT e.id, m.raw FROM entries e JOIN messages m ON m.id = e.message_id"
            " WHERE e.id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(entry_ids)),),
        )
        return {int(r[0]): bytes(r[1]) for r in rows}

    def note_retrieved(self, entry_ids: Sequence[int]) -> None:
        # The store has one writer, first come first served: close's own write commits
        # after this one.
        self._backend.store.write_later(_update_job(self.user, (), list(entry_ids)))
        self._noted = True

    async def close(self, *, deleted: Sequence[int] = (), retrieved: Sequence[int] = ()) -> int:
        if self._closed:
            return 0
        self._closed = True
        try:
            if not deleted and not retrieved and not self._noted:
                return 0
            job = _update_job(self.user, deleted, retrieved)

            async def announced(conn: aiosqlite.Connection) -> tuple[int, tuple[Event, ...]]:
                moves = await job(conn)
                return len(moves), _move_events(moves)

            return await self._backend.store.commit(announced)
        finally:
            self._backend._release(self.user)


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
        hops = [_hop(m.message_id, m.mailbox, user, "deleted", folder=TRASH) for m in moves]
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
    hop = Hop("pop3", outcome, {"mailbox": mailbox, "user": user, **extra})
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
        " SELECT ?, ?, '\\Trash', max(CAST(strftime('%s', 'now') AS INTEGER),"
        " (SELECT coalesce(max(uidvalidity), 0) + 1 FROM folders))"
        " ON CONFLICT (mailbox_id, name) DO NOTHING",
        [(mid, TRASH) for mid in mailbox_ids],
    )
    trash_rows = await conn.execute_fetchall(
        "SELECT mailbox_id, id, uidnext FROM folders"
        " WHERE name = ? AND mailbox_id IN (SELECT value FROM json_each(?))",
        (TRASH, json.dumps(mailbox_ids)),
    )
    trash = {int(r[0]): [int(r[1]), int(r[2])] for r in trash_rows}
    seq_rows = await conn.execute_fetchall(
        "SELECT max((SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'entries'),"
        " (SELECT coalesce(max(id), 0) FROM entries))"
    )
    next_entry = int(next(iter(seq_rows))[0]) + 1
    inserts: list[tuple[Any, ...]] = []
    moves: list[Move] = []
    for old_id, message_id, flags, held, added_at, mailbox_id, address, old_uid in found:
        folder = trash[int(mailbox_id)]
        # RFC 3501 §2.3.1.1: a new UID in the destination, from its uidnext; the
        # entries_advance_uidnext trigger moves uidnext on as each row goes in.
        inserts.append((next_entry, folder[0], folder[1], message_id, flags, held, added_at))
        moves.append(
            Move(int(old_id), next_entry, str(address), int(message_id), int(old_uid), folder[1])
        )
        folder[1] += 1
        next_entry += 1
    await conn.executemany(
        "INSERT INTO entries (id, folder_id, uid, message_id, flags, held, added_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        inserts,
    )
    await conn.execute(
        "DELETE FROM entries WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps([m.old_id for m in moves]),),
    )
    return moves
