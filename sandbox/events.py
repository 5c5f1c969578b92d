"""The in-process event bus: everything that happens is published once, here.

Publishers never wait for consumers. Each subscriber gets its own bounded queue; a
subscriber that falls behind loses the oldest events (and is told how many through
``dropped``) rather than slowing the SMTP servers down. The journal, the TUI and the
test helpers are all subscribers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Event:
    """Base of every event; ``kind`` names it in the journal."""

    kind: str = field(init=False, default="event")
    at: float = field(default_factory=time.time, kw_only=True)

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
        for listener in self._listeners:
            listener(event)
        for sub in self._subscriptions:
            sub._offer(event)

    def subscribe(self, maxsize: int = 10_000) -> Subscription:
        sub = Subscription(self, maxsize)
        self._subscriptions.append(sub)
        return sub

    def listen(self, listener: Listener) -> None:
        """Call ``listener`` synchronously on every event; it must be quick and not raise."""
        self._listeners.append(listener)

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
