"""The in-process side of the change feed: everything that happens is published once, here.

The contract every subscriber (IMAP/POP3 backends, the TUI, ``sandbox.testing.wait_for``,
the relay, the HTTP event stream) relies on:

- Every change to the data file, made by *any* process on it, is published on the bus of
  every process that has the file open (``SqliteStore.open``) exactly once, after its
  commit, as one of the event classes below.
- A change made in this process is published as soon as its transaction commits
  (``SqliteStore.commit``); the same transaction writes it to the ``changes`` table.
- A change made by another process reaches this bus through ``sandbox.store.feed.ChangeFeed``:
  it sees SQLite's ``data_version`` move (checked every 20 ms by default), reads the new
  ``changes`` rows of other origins in sequence order and publishes them here with
  ``remote=True`` — within 250 ms of that commit.
- ``StoreResynced`` means "changes may have been missed (the feed fell behind its trimmed
  window): read the store afresh"; ``MessagesCleared`` and ``MessagesPruned`` carry only
  counts, so a subscriber that caches rows reloads what it shows on those too.
- Journal-only events (``SmtpSessionEnded``, ``MailSessionChanged``, ``DnsQueried``) are
  not data changes: they stay on the bus of the process where they happened (and in the
  ``events`` journal).

Publishers never wait for consumers. Each subscriber gets its own bounded queue; a
subscriber that falls behind loses the oldest events (and is told how many through
``dropped``) rather than slowing the SMTP servers down. A listener that raises is logged
and skipped: what was committed stays committed, and the protocol reply says so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, fields
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """Base of every event; ``kind`` names it in the journal."""

    kind: str = field(init=False, default="event")
    at: float = field(default_factory=time.time, kw_only=True)
    # True when another process made the change and the change feed brought it here.
    remote: bool = field(default=False, kw_only=True, compare=False)

    def as_dict(self) -> dict[str, Any]:
        # Shallow on purpose: dataclasses.asdict deep-copies and costs ~20 µs an event.
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class MessageStored(Event):
    """A message was committed: one entry per mailbox/folder copy."""

    kind: str = field(init=False, default="message.stored")
    message_id: int
    entries: tuple[tuple[int, str, str], ...]  # (entry id, mailbox, folder)
    envelope_from: str
    subject: str | None
    source: str


@dataclass(frozen=True)
class SmtpSessionEnded(Event):
    """One SMTP connection, from greeting to close, with a capped transcript."""

    kind: str = field(init=False, default="smtp.session")
    server: str
    peer: str
    helo: str | None
    auth_user: str | None
    tls: bool
    messages: int
    started_at: float
    transcript: tuple[str, ...]


@dataclass(frozen=True)
class SmtpSessionProgress(SmtpSessionEnded):
    """The same record while the session is still open (at the greeting and after each
    accepted message), so the SMTP log shows a session as it happens."""

    kind: str = field(init=False, default="smtp.progress")


@dataclass(frozen=True)
class MailSessionChanged(Event):
    """One IMAP or POP3 connection as the session log shows it: published at open, at
    each change that matters (login, SELECT, IDLE start and end, TLS) and at close."""

    kind: str = field(init=False, default="mail.session")
    session_id: str
    server: str
    peer: str
    user: str | None
    tls: bool
    started_at: float
    open: bool
    folder: str | None = None  # IMAP: the selected folder
    idling: bool = False  # IMAP: an IDLE is running (RFC 2177)
    steps: tuple[str, ...] = ()  # what happened, oldest first, capped


@dataclass(frozen=True)
class ImapSessionChanged(MailSessionChanged):
    kind: str = field(init=False, default="imap.session")


@dataclass(frozen=True)
class Pop3SessionChanged(MailSessionChanged):
    kind: str = field(init=False, default="pop3.session")


@dataclass(frozen=True)
class MessagesCleared(Event):
    kind: str = field(init=False, default="messages.cleared")
    count: int


@dataclass(frozen=True)
class MessagesMoved(Event):
    """Entries left one folder for another (a POP3 deletion moves INBOX → Trash)."""

    kind: str = field(init=False, default="messages.moved")
    moves: tuple[tuple[int, int, str, str, str], ...]  # (old id, new id, mailbox, from, to)
    reason: str


@dataclass(frozen=True)
class MessagesPruned(Event):
    """Retention removed old messages (count of raw messages, with all their copies)."""

    kind: str = field(init=False, default="messages.pruned")
    count: int


Listener = Callable[[Event], None]


class Subscription:
    """A bounded queue of events for one consumer."""

    def __init__(self, bus: EventBus, maxsize: int) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.dropped = 0

    def _offer(self, event: Event) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)

    async def get(self) -> Event:
        return await self._queue.get()

    def get_nowait(self) -> Event | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def close(self) -> None:
        self._bus._unsubscribe(self)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            yield await self.get()


class EventBus:
    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self._listeners: list[Listener] = []

    def publish(self, event: Event) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(event)
            except Exception:  # a consumer's bug never undoes or misreports a commit
                log.exception("an event listener failed on %s", event.kind)
        for sub in self._subscriptions:
            sub._offer(event)

    def subscribe(self, maxsize: int = 10_000) -> Subscription:
        sub = Subscription(self, maxsize)
        self._subscriptions.append(sub)
        return sub

    def listen(self, listener: Listener) -> None:
        """Call ``listener`` synchronously on every event; it must be quick (errors are logged)."""
        self._listeners.append(listener)

    def unlisten(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)


@dataclass(frozen=True)
class DnsQueried(Event):
    """One query answered (or dropped, for a timeout fault) by the DNS stub."""

    kind: str = field(init=False, default="dns.query")
    client: str
    transport: str
    qname: str
    qtype: str
    rcode: str
    answer: str
    micros: int
    fault: str | None


@dataclass(frozen=True)
class FlagsChanged(Event):
    """Flags of message copies changed (IMAP STORE, \\Seen on FETCH); ``origin`` names who."""

    kind: str = field(init=False, default="flags.changed")
    mailbox: str
    folder: str
    changes: tuple[tuple[int, int, tuple[str, ...]], ...]  # (entry id, uid, new flags)
    origin: str = ""


@dataclass(frozen=True)
class EntriesExpunged(Event):
    """Message copies were removed from a folder (IMAP EXPUNGE/MOVE, folder delete)."""

    kind: str = field(init=False, default="entries.expunged")
    mailbox: str
    folder: str
    entries: tuple[tuple[int, int], ...]  # (entry id, uid)
    origin: str = ""


@dataclass(frozen=True)
class EntriesCopied(Event):
    """Existing messages got new copies in a folder (IMAP COPY/MOVE); no new message."""

    kind: str = field(init=False, default="entries.copied")
    mailbox: str
    folder: str
    entries: tuple[tuple[int, int, int], ...]  # (entry id, uid, message id)
    origin: str = ""


@dataclass(frozen=True)
class DeliveriesQueued(Event):
    """A stored message has relay deliveries waiting: the relay wakes up."""

    kind: str = field(init=False, default="relay.queued")
    message_id: int
    delivery_ids: tuple[int, ...]


@dataclass(frozen=True)
class DeliveryAttempted(Event):
    """One relay attempt ended: delivered, deferred (will retry) or bounced."""

    kind: str = field(init=False, default="relay.attempt")
    delivery_id: int
    message_id: int
    domain: str
    state: str
    attempt: int
    reply: str


@dataclass(frozen=True)
class FolderChanged(Event):
    """A folder was created, renamed (``new_name``) or deleted (its copies: ``EntriesExpunged``)."""

    kind: str = field(init=False, default="folder.changed")
    mailbox: str
    folder: str
    change: str  # "created", "renamed", "deleted"
    new_name: str | None = None
    origin: str = ""


@dataclass(frozen=True)
class TagsChanged(Event):
    """Tags of message copies changed (the HTTP API, Mailpit's tags)."""

    kind: str = field(init=False, default="tags.changed")
    entries: tuple[tuple[int, tuple[str, ...]], ...]  # (entry id, its tags now)


@dataclass(frozen=True)
class StoreResynced(Event):
    """This process may have missed changes: whatever caches store rows reloads them."""

    kind: str = field(init=False, default="store.resynced")
    reason: str = ""


# --- events as rows of the ``changes`` table -------------------------------------------

FEED_EVENTS: tuple[type[Event], ...] = (
    MessageStored,
    MessagesCleared,
    MessagesMoved,
    MessagesPruned,
    FlagsChanged,
    EntriesExpunged,
    EntriesCopied,
    DeliveriesQueued,
    DeliveryAttempted,
    FolderChanged,
    TagsChanged,
)
_BY_KIND: dict[str, type[Event]] = {cls.kind: cls for cls in FEED_EVENTS}


def is_feed_event(event: Event) -> bool:
    """Data changes travel between processes; journal-only events do not."""
    return event.kind in _BY_KIND


def event_payload(event: Event) -> dict[str, Any]:
    """The fields that rebuild ``event`` in another process (``kind`` and ``remote`` aside)."""
    return {f.name: getattr(event, f.name) for f in fields(event) if f.init and f.name != "remote"}


def event_from_row(kind: str, payload: dict[str, Any]) -> Event | None:
    """Rebuild an event another process recorded; None for a kind this version lacks."""
    cls = _BY_KIND.get(kind)
    if cls is None:
        return None
    known = {f.name for f in fields(cls) if f.init}
    values = {k: _tuples(v) for k, v in payload.items() if k in known}
    return cls(**values, remote=True)


def _tuples(value: Any) -> Any:
    """JSON gives lists back; the event classes hold tuples."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value
