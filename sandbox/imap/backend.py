"""IMAP's access to the store: its own SQL, group-committed writes, a parsed-message cache.

Every statement lives in ``sandbox.store.folders``; writes go through
``store.commit(job)``: each is one transaction in the writer's group commit, its events
recorded for the change feed in it and announced on the bus after it; reads go through
``store.read``. The bus is also how this backend learns of changes
made elsewhere (SMTP deliveries, POP3, the TUI, other processes through the change feed):
one listener fans events out to the sessions watching each folder.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import aiosqlite

from sandbox.events import (
    EntriesCopied,
    EntriesExpunged,
    Event,
    EventBus,
    FlagsChanged,
    MessagesCleared,
    MessagesPruned,
    MessageStored,
    StoreResynced,
)
from sandbox.imap.message import Part, parse_message, split_header
from sandbox.ingest import ingest
from sandbox.store import Copy, Hop, NewMessage, SqliteStore, folders
from sandbox.store.folders import Entry, Folder
from sandbox.store.messages import delete_copies, expunged_events

__all__ = ["Entry", "Folder", "FolderKey", "ImapBackend", "Meta", "Snapshot", "merge_flags"]

FolderKey = tuple[str, str]  # (mailbox address, folder name)
Watcher = Callable[[Event], None]
_CHUNK = 500  # ids per IN (...) query


@dataclass(frozen=True)
class Snapshot:
    """A folder's whole entry list as of one database version, with what SELECT derives."""

    stamp: tuple[int, int]
    entries: tuple[Entry, ...]
    uids: tuple[int, ...]
    keywords: tuple[str, ...]
    first_unseen: int | None  # 0-based index of the first message without \Seen


@dataclass(frozen=True)
class Meta:
    size: int
    internaldate: float


class _Lru:
    """A cache bounded by total bytes; messages never change, so nothing goes stale."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self._items: OrderedDict[int, tuple[Any, int]] = OrderedDict()

    def get(self, key: int) -> Any:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: int, value: Any, size: int) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.used -= old[1]
        self._items[key] = (value, size)
        self.used += size
        while self.used > self.budget and self._items:
            _, (_, dropped) = self._items.popitem(last=False)
            self.used -= dropped


def merge_flags(
    current: tuple[str, ...], mode: Literal["", "+", "-"], flags: tuple[str, ...]
) -> tuple[str, ...]:
    """§6.4.6 STORE: replace, add or remove; flags compare case-insensitively (§2.3.2)."""
    wanted = [f for f in flags if f.upper() != "\\RECENT"]
    if mode == "":
        base: list[str] = []
        extra = wanted
    elif mode == "+":
        base = list(current)
        extra = wanted
    else:
        gone = {f.upper() for f in wanted}
        return tuple(f for f in current if f.upper() not in gone)
    seen = {f.upper() for f in base}
    for flag in extra:
        if flag.upper() not in seen:
            seen.add(flag.upper())
            base.append(flag)
    return tuple(base)


class ImapBackend:
    """The store as IMAP sees it; one per server, shared by its sessions."""

    def __init__(
        self,
        store: SqliteStore,
        bus: EventBus,
        *,
        header_cache_bytes: int = 32 * 1024 * 1024,
        message_cache_bytes: int = 64 * 1024 * 1024,
        read_ahead_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.store = store
        self.bus = bus
        self._headers = _Lru(header_cache_bytes)
        self._parsed = _Lru(message_cache_bytes)
        # Raw messages read ahead for a client fetching them one command at a time (mbsync).
        self._ahead = _Lru(read_ahead_bytes)
        self._meta: dict[int, Meta] = {}
        self._snapshots: dict[int, Snapshot] = {}
        self._watchers: dict[FolderKey, set[Watcher]] = {}
        self._all_watchers: set[Watcher] = set()
        # RFC 3501 §2.3.2 \Recent: the highest UID some session has already been told of.
        self.recent_seen: dict[int, int] = {}
        self._closed = False
        bus.listen(self._dispatch)

    def close(self) -> None:
        """The bus has no unlisten; a closed backend just stops fanning events out."""
        self._closed = True
        self._watchers.clear()
        self._all_watchers.clear()

    # --- change notification ---------------------------------------------------------

    def watch(self, key: FolderKey, watcher: Watcher) -> None:
        self._watchers.setdefault(key, set()).add(watcher)
        self._all_watchers.add(watcher)

    def unwatch(self, key: FolderKey, watcher: Watcher) -> None:
        self._watchers.get(key, set()).discard(watcher)
        self._all_watchers.discard(watcher)

    def _dispatch(self, event: Event) -> None:
        if self._closed:
            return
        if isinstance(event, MessageStored):
            keys = {(mailbox, folder) for _, mailbox, folder in event.entries}
            for key in keys:
                for watcher in tuple(self._watchers.get(key, ())):
                    watcher(event)
        elif isinstance(event, FlagsChanged | EntriesExpunged | EntriesCopied):
            for watcher in tuple(self._watchers.get((event.mailbox, event.folder), ())):
                watcher(event)
        elif isinstance(event, MessagesCleared | MessagesPruned | StoreResynced):
            # They carry counts only: every selected session rereads its folder.
            for watcher in tuple(self._all_watchers):
                watcher(event)

    def claim_recent(self, folder_id: int, uids: Iterable[int]) -> set[int]:
        """The UIDs this session is first to see; they carry \\Recent for it alone."""
        seen = self.recent_seen.get(folder_id, 0)
        mine = {uid for uid in uids if uid > seen}
        if mine:
            self.recent_seen[folder_id] = max(mine)
        return mine

    # --- folders --------------------------------------------------------------------

    async def ensure_mailbox(self, address: str) -> None:
        """A mailbox springs into being at first login, like catch-all delivery makes it."""
        if not await self.store.read(lambda conn: folders.mailbox_exists(conn, address)):
            await self.store.commit(lambda conn: folders.ensure_mailbox(conn, address))

    async def folders(self, address: str | None = None) -> list[Folder]:
        """Every folder of one mailbox, or of all mailboxes (the ``all`` login)."""
        return await self.store.read(lambda conn: folders.list_folders(conn, address))

    async def mailbox_addresses(self) -> list[str]:
        return await self.store.read(folders.mailbox_addresses)

    async def folder(self, address: str, name: str) -> Folder | None:
        return await self.store.read(lambda conn: folders.get_folder(conn, address, name))

    async def create_folder(self, address: str, name: str, *, subscribed: bool) -> bool:
        """False when it exists already."""
        return await self.store.commit(folders.create(address, name, subscribed=subscribed))

    async def delete_folder(self, folder: Folder, origin: str) -> None:
        await self.store.commit(folders.delete(folder, origin))
        self.recent_seen.pop(folder.id, None)

    async def rename_folder(self, folder: Folder, new_name: str, origin: str) -> bool:
        """Rename a folder and its children (§6.3.5); INBOX moves its messages instead."""
        moved = await self.store.commit(folders.rename(folder, new_name, origin))
        return moved is not None

    async def set_subscribed(self, folder: Folder, subscribed: bool) -> None:
        await self.store.commit(folders.set_subscribed(folder.id, subscribed))

    async def counts(self, folder_id: int, recent_after: int) -> tuple[int, int, int]:
        """(messages, unseen, recent) for STATUS (§6.3.10)."""
        return await self.store.read(lambda conn: folders.counts(conn, folder_id, recent_after))

    # --- entries --------------------------------------------------------------------

    async def snapshot(self, folder_id: int) -> Snapshot:
        """Every entry of a folder, rebuilt only when the database changed since last time.

        ``PRAGMA data_version`` moves whenever another connection commits (whatever wrote:
        SMTP, POP3, the TUI, another process); ``total_changes()`` covers a store whose
        reader is its writer. Read before the entries, so a commit in between only makes
        the next SELECT rebuild again.
        """
        stamp = await self.store.read(folders.stamp)
        cached = self._snapshots.get(folder_id)
        if cached is not None and cached.stamp == stamp:
            return cached
        entries = tuple(await self.entries(folder_id))
        keywords = sorted({f for e in entries for f in e.flags if not f.startswith("\\")})
        first_unseen = next((i for i, e in enumerate(entries) if "\\Seen" not in e.flags), None)
        snap = Snapshot(
            stamp, entries, tuple(e.uid for e in entries), tuple(keywords), first_unseen
        )
        self._snapshots[folder_id] = snap
        return snap

    async def entries(self, folder_id: int, after_uid: int = 0) -> list[Entry]:
        return await self.store.read(lambda conn: folders.entries(conn, folder_id, after_uid))

    async def update_flags(
        self,
        folder: Folder,
        entry_ids: Sequence[int],
        mode: Literal["", "+", "-"],
        flags: tuple[str, ...],
        origin: str,
    ) -> dict[int, tuple[str, ...]]:
        """Read-modify-write in one transaction, so concurrent STOREs never lose a flag."""

        def merge(current: tuple[str, ...]) -> tuple[str, ...]:
            return merge_flags(current, mode, flags)

        result = await self.store.commit(folders.update_flags(folder, entry_ids, merge, origin))
        return {eid: new for eid, (_, new, _) in result.items()}

    async def expunge(
        self, folder: Folder, entry_ids: Sequence[int], origin: str
    ) -> list[tuple[int, int]]:
        """Delete these copies (and messages no copy refers to any more)."""

        async def job(
            conn: aiosqlite.Connection,
        ) -> tuple[list[tuple[int, int]], tuple[Event, ...]]:
            gone = await delete_copies(conn, entry_ids, folder.id)
            return [(g[0], g[1]) for g in gone], expunged_events(gone, origin)

        return await self.store.commit(job)

    async def copy(
        self,
        source: Folder,
        entries: Sequence[Entry],
        target: Folder,
        *,
        move: bool,
        origin: str,
    ) -> tuple[int, list[tuple[int, int]]]:
        """Copy (or move) copies into ``target``; returns its UIDVALIDITY and (old, new) UIDs.

        RFC 3501 §6.4.7: flags go along; the new copies get ascending UIDs in one run.
        """

        job = folders.copy(source, entries, target, move=move, origin=origin)
        uidvalidity, pairs = await self.store.commit(job)
        return uidvalidity, [(p[0], p[1]) for p in pairs]

    async def append(
        self, folder: Folder, raw: bytes, flags: tuple[str, ...], internaldate: float, user: str
    ) -> int:
        """Through the one ingest path, so the TUI and IDLE hear of it like any delivery."""
        stored = await ingest(
            self.store,
            NewMessage(
                raw=raw,
                envelope_from="",
                envelope_to=(folder.address,),
                source="imap",
                copies=(Copy(folder.address, folder.name, flags=flags),),
                hops=(Hop("appended", "stored", {"protocol": "IMAP", "user": user}),),
                received_at=internaldate,
            ),
        )
        return stored.copies[0].uid

    async def copy_with_message_id(self, folder: Folder, raw: bytes) -> int | None:
        """The UID of a copy in ``folder`` with the Message-ID of ``raw`` (None: none)."""
        wanted = parse_message(raw).get("message-id")
        if not wanted or not wanted.strip().strip("<>"):
            return None
        return await self.store.read(
            partial(folders.uid_by_message_id, folder_id=folder.id, message_id=wanted)
        )

    # --- message data (immutable, so cached by message id) ---------------------------

    async def meta(self, message_ids: Sequence[int]) -> dict[int, Meta]:
        missing = [m for m in message_ids if m not in self._meta]
        for chunk in folders.chunks(missing):
            for mid, size, received_at in await self.store.read(
                partial(folders.sizes, message_ids=chunk)
            ):
                self._meta[mid] = Meta(size, received_at)
        return {m: self._meta[m] for m in message_ids if m in self._meta}

    async def headers(self, message_ids: Sequence[int]) -> dict[int, bytes]:
        """Header blocks, read without pulling whole messages out of SQLite."""
        result: dict[int, bytes] = {}
        missing = []
        for mid in message_ids:
            cached = self._headers.get(mid)
            if cached is None:
                parsed = self._parsed.get(mid)
                if parsed is not None:
                    cached = parsed.header
            if cached is None:
                missing.append(mid)
            else:
                result[mid] = cached
        for chunk in folders.chunks(missing):
            for mid, data in await self.store.read(
                partial(folders.header_blocks, message_ids=chunk)
            ):
                header = split_header(data)[0]
                self._headers.put(mid, header, len(header) + 100)
                result[mid] = header
        return result

    async def flat_messages(
        self, message_ids: Sequence[int], ahead: Callable[[], Sequence[int]] | None = None
    ) -> dict[int, Part]:
        """Header and body split only: enough for BODY[], BODY[TEXT], RFC822.

        ``ahead()`` names messages the client is likely to ask for next: when this call has
        to go to SQLite anyway, they come along in the same query and wait in a cache, so
        a client that sends one UID FETCH per message costs one round trip per batch.
        """
        result: dict[int, Part] = {}
        missing = []
        for mid in message_ids:
            cached = self._parsed.get(mid)
            if cached is None:
                cached = self._ahead.get(mid)
            if cached is None:
                missing.append(mid)
            else:
                result[mid] = cached
        if not missing:
            return result
        wanted = set(missing)
        extra = [
            m
            for m in (ahead() if ahead is not None else ())
            if m not in wanted and self._ahead.get(m) is None and self._parsed.get(m) is None
        ]
        for chunk in folders.chunks(missing + extra):
            for mid, data in await self.store.read(partial(folders.raws, message_ids=chunk)):
                header, body = split_header(data)
                part = Part(header, body)
                if mid in wanted:
                    result[mid] = part
                else:
                    self._ahead.put(mid, part, len(data) + 200)
        return result

    async def messages(self, message_ids: Sequence[int]) -> dict[int, Part]:
        result: dict[int, Part] = {}
        missing = []
        for mid in message_ids:
            cached = self._parsed.get(mid)
            if cached is None:
                missing.append(mid)
            else:
                result[mid] = cached
        for chunk in folders.chunks(missing):
            for mid, raw in await self.store.read(partial(folders.raws, message_ids=chunk)):
                part = parse_message(raw)
                self._parsed.put(mid, part, len(raw) + 500)
                result[mid] = part
        return result
