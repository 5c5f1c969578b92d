"""What the POP3 session needs from the store, and the implementation over SQLite.

A maildrop is one mailbox's INBOX (or every INBOX, for the user ``all``), snapshotted at
login: RFC 1939 §4 numbers messages from 1 for the whole session, so messages arriving
later are not seen until the next login. A POP3 deletion moves the entry to the same
mailbox's Trash with a new UID, so IMAP clients and the TUI see it leave INBOX.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from typing import NamedTuple, Protocol

from sandbox.config import Config
from sandbox.store import SqliteStore, maildrop, normalize_address

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
            rows = await maildrop.inbox(self.store, None if name == ALL_USER else name)
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
            rows = await maildrop.wire_sizes(self.store, missing)
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
        return await maildrop.raw_of_copies(self._backend.store, entry_ids)

    def note_retrieved(self, entry_ids: Sequence[int]) -> None:
        # The store has one writer, first come first served: close's own write commits
        # after this one.
        maildrop.note_retrieved(self._backend.store, self.user, entry_ids)
        self._noted = True

    async def close(self, *, deleted: Sequence[int] = (), retrieved: Sequence[int] = ()) -> int:
        if self._closed:
            return 0
        self._closed = True
        try:
            if not deleted and not retrieved and not self._noted:
                return 0
            return await maildrop.close(self._backend.store, self.user, deleted, retrieved)
        finally:
            self._backend._release(self.user)
