"""The selected mailbox as one session has told its client about it, and its sync.

Sequence numbers belong to the session: the store's changes (other sessions, SMTP
deliveries, the TUI) arrive as bus events, are queued here by ``on_event`` and told to
the client by ``sync`` at the points RFC 3501 §5.2/§7.4.1 allow — after any command,
except that EXPUNGE is never sent during FETCH, STORE or SEARCH (sequence numbers must not
shift under a client that is using them) — and at once while the client IDLEs (RFC 2177).
"""

from __future__ import annotations

import bisect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace

from sandbox.events import (
    EntriesCopied,
    EntriesExpunged,
    Event,
    FlagsChanged,
    MessagesCleared,
    MessagesPruned,
    MessageStored,
    StoreResynced,
)
from sandbox.imap import response as R
from sandbox.imap.backend import Entry, Folder, ImapBackend
from sandbox.imap.parser import SequenceSet
from sandbox.imap.state import Bad

Emit = Callable[[bytes], Awaitable[None]]

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


def has_flag(flags: Iterable[str], flag: str) -> bool:
    """Flags compare case-insensitively (RFC 3501 §2.3.2)."""
    wanted = flag.upper()
    return any(f.upper() == wanted for f in flags)


@dataclass
class Selected:
    """The folder as this session has told the client about it (sequence numbers!)."""

    folder: Folder
    readonly: bool
    entries: list[Entry]
    uids: list[int] = field(default_factory=list)
    recent: set[int] = field(default_factory=set)
    new_pending: bool = False
    resync_pending: bool = False
    flags_pending: dict[int, tuple[str, ...]] = field(default_factory=dict)
    expunge_pending: set[int] = field(default_factory=set)
    next_body_index: int = -1  # where the last body FETCH ended, to spot a sequential reader
    keywords: list[str] = field(default_factory=list)  # as told in the last untagged FLAGS

    def __post_init__(self) -> None:
        self.reindex()

    def reindex(self) -> None:
        self.uids = [e.uid for e in self.entries]

    def index_of(self, uid: int) -> int | None:
        i = bisect.bisect_left(self.uids, uid)
        return i if i < len(self.uids) and self.uids[i] == uid else None

    def flags_responses(self) -> bytes:
        """The untagged FLAGS and PERMANENTFLAGS that describe this folder (§7.2.6, §7.1)."""
        permanent = "" if self.readonly else " ".join((*SYSTEM_FLAGS, "\\*"))
        return (
            f"* FLAGS ({' '.join((*SYSTEM_FLAGS, *self.keywords))})\r\n"
            f"* OK [PERMANENTFLAGS ({permanent})] Flags permitted\r\n"
        ).encode()

    async def announce(self, flags: Iterable[str], emit: Emit) -> None:
        """Tell of keywords the client has not heard of yet, before any FETCH shows them.

        RFC 3501 §7.2.6 / RFC 9051 §7.3.5: FLAGS lists the flags applicable in the
        mailbox; a client may take anything outside it for an error, so a keyword new to
        this session (set here, by another session or by APPEND) gets FLAGS first.
        """
        known = {k.upper() for k in self.keywords}
        new = [f for f in dict.fromkeys(flags) if not f.startswith("\\") and f.upper() not in known]
        if new:
            self.keywords.extend(new)
            await emit(self.flags_responses())

    def render_flags(self, entry: Entry) -> bytes:
        """An entry's flag list as the client sees it, ``\\Recent`` included."""
        flags = entry.flags
        if entry.uid in self.recent:
            flags = (*flags, "\\Recent")
        return R.flags(flags)

    def apply_flags(self, new: dict[int, tuple[str, ...]]) -> set[int]:
        """Our own copy of flags after a write; returns the entry ids that changed."""
        changed: set[int] = set()
        for i, entry in enumerate(self.entries):
            flags = new.get(entry.entry_id)
            if flags is not None and flags != entry.flags:
                self.entries[i] = replace(entry, flags=flags)
                changed.add(entry.entry_id)
        return changed

    def indexes(self, seqset: SequenceSet, *, uid: bool) -> list[int]:
        """0-based positions named by a sequence set (§9 sequence-set)."""
        count = len(self.uids)
        chosen: set[int] = set()
        if uid:
            if not count:
                return []
            top = self.uids[-1]
            for r in seqset:
                # §6.4.8: "n:*" always includes the last message, even when n > its UID.
                lo, hi = sorted(
                    (top if r.first is None else r.first, top if r.last is None else r.last)
                )
                chosen.update(
                    range(bisect.bisect_left(self.uids, lo), bisect.bisect_right(self.uids, hi))
                )
        else:
            for r in seqset:
                first = count if r.first is None else r.first
                last = count if r.last is None else r.last
                if not count and (r.first is None or r.last is None):
                    continue
                if first > count or last > count:
                    raise Bad(f"No message with sequence number {max(first, last)}")
                lo, hi = sorted((first, last))
                chosen.update(range(lo - 1, hi))
        return sorted(chosen)

    def on_event(self, event: Event, origin: str) -> bool:
        """Queue a change from the bus; True when the client has something to hear."""
        if isinstance(event, MessageStored | EntriesCopied):
            self.new_pending = True
        elif isinstance(event, FlagsChanged):
            if event.origin == origin:
                return False
            for _, uid, flags in event.changes:
                self.flags_pending[uid] = flags
        elif isinstance(event, EntriesExpunged):
            if event.origin == origin:
                return False
            self.expunge_pending.update(uid for _, uid in event.entries)
        elif isinstance(event, MessagesCleared | MessagesPruned | StoreResynced):
            # Counts only: reread the folder and report the difference (§7.4.1, §7.3.1).
            self.resync_pending = True
        else:
            return False
        return True

    async def sync(self, backend: ImapBackend, emit: Emit, *, expunge_ok: bool) -> None:
        """Tell the client what changed in the folder (§7.3.1, §7.4.1)."""
        if self.resync_pending:
            self.resync_pending = False
            current = {e.uid: e for e in await backend.entries(self.folder.id)}
            self.expunge_pending.update(uid for uid in self.uids if uid not in current)
            for entry in self.entries:
                fresh = current.get(entry.uid)
                if fresh is not None and fresh.flags != entry.flags:
                    self.flags_pending[entry.uid] = fresh.flags
            self.new_pending = True
        if expunge_ok and self.expunge_pending:
            doomed = sorted(
                (i for uid in self.expunge_pending if (i := self.index_of(uid)) is not None),
                reverse=True,
            )
            self.expunge_pending.clear()
            # Highest first: each EXPUNGE renumbers only the messages after it.
            for i in doomed:
                await emit(b"* %d EXPUNGE\r\n" % (i + 1))
                self.recent.discard(self.uids[i])
            if doomed:
                gone = set(doomed)
                self.entries = [e for i, e in enumerate(self.entries) if i not in gone]
                self.reindex()
        if self.new_pending:
            self.new_pending = False
            after = self.uids[-1] if self.uids else 0
            fresh_entries = await backend.entries(self.folder.id, after)
            if fresh_entries:
                await self.announce((f for e in fresh_entries for f in e.flags), emit)
                self.entries.extend(fresh_entries)
                self.reindex()
                uids = [e.uid for e in fresh_entries]
                if self.readonly:
                    seen = backend.recent_seen.get(self.folder.id, 0)
                    self.recent.update(u for u in uids if u > seen)
                else:
                    self.recent |= backend.claim_recent(self.folder.id, uids)
                await emit(
                    b"* %d EXISTS\r\n* %d RECENT\r\n" % (len(self.entries), len(self.recent))
                )
        if self.flags_pending:
            pending, self.flags_pending = self.flags_pending, {}
            await self.announce((f for flags in pending.values() for f in flags), emit)
            for uid, flags in sorted(pending.items()):
                i = self.index_of(uid)
                if i is None or self.entries[i].flags == flags:
                    continue
                self.entries[i] = replace(self.entries[i], flags=flags)
                await emit(
                    b"* %d FETCH (UID %d FLAGS " % (i + 1, uid)
                    + self.render_flags(self.entries[i])
                    + b")\r\n"
                )
