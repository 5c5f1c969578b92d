"""IMAP's access to the store: its own SQL, group-committed writes, a parsed-message cache.

Writes go through ``store.commit(job)``: each is one transaction in the writer's group
commit, its events recorded for the change feed in it and announced on the bus after it;
reads go through ``store.fetchall``. The bus is also how this backend learns of changes
made elsewhere (SMTP deliveries, POP3, the TUI, other processes through the change feed):
one listener fans events out to the sessions watching each folder.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiosqlite

from sandbox.events import (
    EntriesCopied,
    EntriesExpunged,
    Event,
    EventBus,
    FlagsChanged,
    FolderChanged,
    MessagesCleared,
    MessagesPruned,
    MessageStored,
    StoreResynced,
)
from sandbox.imap.message import Part, parse_message, split_header
from sandbox.ingest import ingest
from sandbox.store import Copy, Hop, NewMessage, SqliteStore, domain_of
from sandbox.store.folders import NEW_UIDVALIDITY
from sandbox.store.sqlite import delete_copies, expunged_events

FolderKey = tuple[str, str]  # (mailbox address, folder name)
Watcher = Callable[[Event], None]
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
    def key(self) -> FolderKey:
        return (self.address, self.name)


@dataclass(frozen=True)
class Entry:
    """One message copy in a folder, as a selected session tracks it."""

    entry_id: int
    uid: int
    message_id: int
    flags: tuple[str, ...]


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


def _chunks(values: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


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

        async def job(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "INSERT INTO mailboxes (address, domain, created_at)"
                " VALUES (?, ?, strftime('%s', 'now')) ON CONFLICT (address) DO NOTHING",
                (address, domain_of(address)),
            )

        if not await self.store.fetchall("SELECT 1 FROM mailboxes WHERE address = ?", (address,)):
            await self.store.write(job)

    async def folders(self, address: str | None = None) -> list[Folder]:
        """Every folder of one mailbox, or of all mailboxes (the ``all`` login)."""
        sql = (
            "SELECT f.id, m.address, f.name, f.special_use, f.uidvalidity, f.uidnext,"
            " f.subscribed FROM folders f JOIN mailboxes m ON m.id = f.mailbox_id"
        )
        params: tuple[Any, ...] = ()
        if address is not None:
            sql += " WHERE m.address = ?"
            params = (address,)
        rows = await self.store.fetchall(sql + " ORDER BY m.address, f.name", params)
        return [_folder(row) for row in rows]

    async def mailbox_addresses(self) -> list[str]:
        rows = await self.store.fetchall("SELECT address FROM mailboxes ORDER BY address")
        return [str(r[0]) for r in rows]

    async def folder(self, address: str, name: str) -> Folder | None:
        rows = await self.store.fetchall(
            "SELECT f.id, m.address, f.name, f.special_use, f.uidvalidity, f.uidnext,"
            " f.subscribed FROM folders f JOIN mailboxes m ON m.id = f.mailbox_id"
            " WHERE m.address = ? AND f.name = ?",
            (address, name),
        )
        return _folder(rows[0]) if rows else None

    async def create_folder(self, address: str, name: str) -> bool:
        """False when it exists already."""

        async def job(conn: aiosqlite.Connection) -> tuple[bool, tuple[Event, ...]]:
            await conn.execute(
                "INSERT INTO mailboxes (address, domain, created_at)"
                " VALUES (?, ?, strftime('%s', 'now')) ON CONFLICT (address) DO NOTHING",
                (address, domain_of(address)),
            )
            cursor = await conn.execute(
                "INSERT INTO folders (mailbox_id, name, uidvalidity)"
                f" SELECT id, ?, {NEW_UIDVALIDITY} FROM mailboxes WHERE address = ?"
                " ON CONFLICT (mailbox_id, name) DO NOTHING",
                (name, address),
            )
            created = cursor.rowcount > 0
            return created, (FolderChanged(address, name, "created"),) if created else ()

        return await self.store.commit(job)

    async def delete_folder(self, folder: Folder, origin: str) -> None:
        async def job(conn: aiosqlite.Connection) -> tuple[None, tuple[Event, ...]]:
            rows = await conn.execute_fetchall(
                "SELECT id FROM entries WHERE folder_id = ?", (folder.id,)
            )
            gone = await delete_copies(conn, [int(r[0]) for r in rows], folder.id)
            await conn.execute("DELETE FROM folders WHERE id = ?", (folder.id,))
            changed = FolderChanged(folder.address, folder.name, "deleted", origin=origin)
            return None, (*expunged_events(gone, origin), changed)

        await self.store.commit(job)
        self.recent_seen.pop(folder.id, None)

    async def rename_folder(self, folder: Folder, new_name: str, origin: str) -> bool:
        """Rename a folder and its children (§6.3.5); INBOX moves its messages instead."""

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

        moved = await self.store.commit(job)
        return moved is not None

    async def set_subscribed(self, folder: Folder, subscribed: bool) -> None:
        async def job(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "UPDATE folders SET subscribed = ? WHERE id = ?", (int(subscribed), folder.id)
            )

        await self.store.write(job)

    async def counts(self, folder_id: int, recent_after: int) -> tuple[int, int, int]:
        """(messages, unseen, recent) for STATUS (§6.3.10)."""
        rows = await self.store.fetchall(
            "SELECT count(*), coalesce(sum(instr(' ' || flags || ' ', ' \\Seen ') = 0), 0),"
            " coalesce(sum(uid > ?), 0) FROM entries WHERE folder_id = ?",
            (recent_after, folder_id),
        )
        return int(rows[0][0]), int(rows[0][1]), int(rows[0][2])

    # --- entries --------------------------------------------------------------------

    async def snapshot(self, folder_id: int) -> Snapshot:
        """Every entry of a folder, rebuilt only when the database changed since last time.

        ``PRAGMA data_version`` moves whenever another connection commits (whatever wrote:
        SMTP, POP3, the TUI, another process); ``total_changes()`` covers a store whose
        reader is its writer. Read before the entries, so a commit in between only makes
        the next SELECT rebuild again.
        """
        rows = await self.store.fetchall(
            "SELECT (SELECT data_version FROM pragma_data_version), total_changes()"
        )
        stamp = (int(rows[0][0]), int(rows[0][1]))
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
        rows = await self.store.fetchall(
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

    async def update_flags(
        self,
        folder: Folder,
        entry_ids: Sequence[int],
        mode: Literal["", "+", "-"],
        flags: tuple[str, ...],
        origin: str,
    ) -> dict[int, tuple[str, ...]]:
        """Read-modify-write in one transaction, so concurrent STOREs never lose a flag."""

        async def job(
            conn: aiosqlite.Connection,
        ) -> tuple[dict[int, tuple[int, tuple[str, ...], bool]], tuple[Event, ...]]:
            result: dict[int, tuple[int, tuple[str, ...], bool]] = {}
            updates: list[tuple[str, int]] = []
            for chunk in _chunks(entry_ids):
                rows = await conn.execute_fetchall(
                    "SELECT id, uid, flags FROM entries WHERE folder_id = ?"
                    " AND id IN (SELECT value FROM json_each(?))",
                    (folder.id, json.dumps(list(chunk))),
                )
                for entry_id, uid, text in rows:
                    current = tuple(str(text).split())
                    new = merge_flags(current, mode, flags)
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

        result = await self.store.commit(job)
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

        async def job(
            conn: aiosqlite.Connection,
        ) -> tuple[tuple[int, list[tuple[int, int, int, int]]], tuple[Event, ...]]:
            rows = list(
                await conn.execute_fetchall(
                    "SELECT uidvalidity, uidnext FROM folders WHERE id = ?", (target.id,)
                )
            )
            if not rows:
                raise LookupError(target.name)
            uidvalidity, uidnext = int(rows[0][0]), int(rows[0][1])
            present: dict[int, tuple[int, str, int]] = {}
            for chunk in _chunks([e.entry_id for e in entries]):
                found = await conn.execute_fetchall(
                    "SELECT id, message_id, flags, held FROM entries WHERE folder_id = ?"
                    " AND id IN (SELECT value FROM json_each(?))",
                    (source.id, json.dumps(list(chunk))),
                )
                for r in found:
                    present[int(r[0])] = (int(r[1]), str(r[2]), int(r[3]))
            inserts = []
            pairs: list[tuple[int, int, int, int]] = []  # old uid, new uid, message, old entry
            for entry in entries:
                if entry.entry_id not in present:
                    continue
                message_id, flags, held = present[entry.entry_id]
                inserts.append((target.id, uidnext, message_id, flags, held))
                pairs.append((entry.uid, uidnext, message_id, entry.entry_id))
                uidnext += 1
            await conn.executemany(
                "INSERT INTO entries (folder_id, uid, message_id, flags, held, added_at)"
                " VALUES (?, ?, ?, ?, ?, strftime('%s', 'now'))",
                inserts,
            )
            deleted: list[tuple[int, int, str, str, int]] = []
            if move:
                deleted = await delete_copies(conn, [p[3] for p in pairs], source.id)
            if pairs:
                new_rows = await conn.execute_fetchall(
                    "SELECT uid, id FROM entries WHERE folder_id = ? AND uid BETWEEN ? AND ?",
                    (target.id, pairs[0][1], pairs[-1][1]),
                )
                ids = {int(r[0]): int(r[1]) for r in new_rows}
                pairs = [(old, new, mid, ids[new]) for old, new, mid, _ in pairs]
            events: list[Event] = []
            if pairs:
                copied = tuple((p[3], p[1], p[2]) for p in pairs)
                events.append(EntriesCopied(target.address, target.name, copied, origin=origin))
            events += expunged_events(deleted, origin)
            return (uidvalidity, pairs), tuple(events)

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

    # --- message data (immutable, so cached by message id) ---------------------------

    async def meta(self, message_ids: Sequence[int]) -> dict[int, Meta]:
        missing = [m for m in message_ids if m not in self._meta]
        for chunk in _chunks(missing):
            rows = await self.store.fetchall(
                "SELECT id, size, received_at FROM messages"
                " WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(list(chunk)),),
            )
            for r in rows:
                self._meta[int(r[0])] = Meta(int(r[1]), float(r[2]))
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
        for chunk in _chunks(missing):
            rows = await self.store.fetchall(
                "SELECT id, CASE instr(raw, X'0D0A0D0A') WHEN 0 THEN raw"
                " ELSE substr(raw, 1, instr(raw, X'0D0A0D0A') + 3) END"
                " FROM messages WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(list(chunk)),),
            )
            for mid, data in rows:
                header = split_header(bytes(data))[0]
                self._headers.put(int(mid), header, len(header) + 100)
                result[int(mid)] = header
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
        for chunk in _chunks(missing + extra):
            rows = await self.store.fetchall(
                "SELECT id, raw FROM messages WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(list(chunk)),),
            )
            for mid, raw in rows:
                data = bytes(raw)
                header, body = split_header(data)
                part = Part(header, body)
                if int(mid) in wanted:
                    result[int(mid)] = part
                else:
                    self._ahead.put(int(mid), part, len(data) + 200)
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
        for chunk in _chunks(missing):
            rows = await self.store.fetchall(
                "SELECT id, raw FROM messages WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(list(chunk)),),
            )
            for mid, raw in rows:
                part = parse_message(bytes(raw))
                self._parsed.put(int(mid), part, len(raw) + 500)
                result[int(mid)] = part
        return result


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
