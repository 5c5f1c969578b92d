"""Immutable records that go into and come out of the store."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sandbox.mime import iso_utc
from sandbox.store.dsn import DeliveryDsn

INBOX = "INBOX"
SENT = "Sent"
TRASH = "Trash"
SEEN = "\\Seen"


def normalize_address(address: str) -> str:
    """Mailboxes are catch-all and case-insensitive: one canonical spelling each."""
    return address.strip().strip("<>").lower()


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


@dataclass(frozen=True)
class Copy:
    """Where one copy of a message goes."""

    mailbox: str
    folder: str = INBOX
    held: bool = False
    flags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if "@" not in self.mailbox:
            raise ValueError(f"mailbox must be an address, got {self.mailbox!r}")
        object.__setattr__(self, "mailbox", normalize_address(self.mailbox))


class Step(StrEnum):
    """Where on its journey a hop happened. The values are what the store, the JSON of
    the HTTP API and the webmail carry, so they never change."""

    SUBMITTED = "submitted"  # the submission server accepted it from the app
    RECEIVED = "received"  # an MX server accepted it from the relay (or anyone)
    APPENDED = "appended"  # an IMAP client appended it
    IMPORTED = "imported"  # ``mail-sandbox import`` brought it in
    SIGNED = "signed"  # DKIM signing at submission
    AUTHENTICATED = "authenticated"  # SPF, DKIM, DMARC at the MX
    FORWARDED = "forwarded"
    QUARANTINED = "quarantined"
    QUEUED = "queued"  # a relay delivery was queued
    DNS = "dns"  # MX, then A, through the stub
    CONNECT = "connect"  # a connection to one MX host
    SMTP = "smtp"  # the SMTP transaction with it
    RELAY = "relay"  # the attempt's summary: the delivery's new state
    STORED = "stored"  # a copy landed in a mailbox folder
    BOUNCE = "bounce"  # a DSN about a failure (RFC 3464)
    REPORT = "report"  # a DSN about success or delay (RFC 3461 NOTIFY)
    POP3 = "pop3"  # a POP3 client deleted its copy


class Outcome(StrEnum):
    """How a hop ended (the authentication hop's outcome is its verdict summary
    instead, ``spf=pass dkim=pass dmarc=pass``). Values are stored: they never change."""

    ACCEPTED = "accepted"
    STORED = "stored"
    IMPORTED = "imported"
    SIGNED = "signed"
    KEPT = "kept"
    SKIPPED = "skipped"
    FAILED = "failed"
    ERROR = "error"
    BODY_ALTERED = "body altered"
    JUNK = "junk"
    QUEUED = "queued"
    HELD = "held"
    SENT_COPY = "sent copy"
    DELIVERED = "delivered"
    DEFERRED = "deferred"
    BOUNCED = "bounced"
    LOOP = "loop"
    # DNS
    MX = "mx"
    IMPLICIT_MX = "implicit mx"
    NULL_MX = "null mx"
    NXDOMAIN = "nxdomain"
    ADDRESS = "address"
    NO_ADDRESS = "no address"
    # connections and SMTP replies
    CONNECTED = "connected"
    REUSED = "reused"
    REFUSED = "refused"
    RCPT_REFUSED = "rcpt refused"
    # DSNs
    GENERATED = "generated"
    SENT = "sent"
    NOT_SENT = "not sent"
    DELETED = "deleted"


@dataclass(frozen=True)
class Hop:
    """One step of a message's journey: ``step`` a ``Step``, ``outcome`` an ``Outcome``
    (both plain strings when read back from the store, and equal to the members)."""

    step: str
    outcome: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)

    def as_json(self) -> dict[str, Any]:
        return {"at": iso_utc(self.at), "step": self.step, "outcome": self.outcome, **self.detail}


@dataclass(frozen=True)
class NewDelivery:
    """A relay delivery to queue with the message: one domain, all its recipients."""

    domain: str
    recipients: tuple[str, ...]
    dsn: DeliveryDsn | None = None  # RFC 3461 parameters, when the client gave any


@dataclass(frozen=True)
class NewMessage:
    raw: bytes
    envelope_from: str
    envelope_to: tuple[str, ...]
    source: str
    copies: tuple[Copy, ...]
    hops: tuple[Hop, ...] = ()
    received_at: float = field(default_factory=time.time)
    queue_id: str | None = None  # the id in our 250 reply and Received: header
    parent_queue_id: str | None = None  # the relayed message this one continues
    deliveries: tuple[NewDelivery, ...] = ()
    # Set by the MX server of this sandbox domain: the relay delivery the message fulfils
    # (found through ``parent_queue_id``) is marked done in the same commit, and copies
    # for recipients it already delivered are not stored again (exactly once).
    delivered_for: str | None = None


@dataclass(frozen=True)
class StoredCopy:
    entry_id: int
    mailbox: str
    folder: str
    uid: int


@dataclass(frozen=True)
class StoredMessage:
    message_id: int
    copies: tuple[StoredCopy, ...]
    subject: str | None = None
    delivery_ids: tuple[int, ...] = ()
    duplicate: bool = False  # a relay retry of copies already stored: nothing new


QUEUED = "queued"
DEFERRED = "deferred"
DELIVERED = "delivered"
BOUNCED = "bounced"
NOT_DONE = (QUEUED, DEFERRED)


@dataclass(frozen=True)
class Delivery:
    """One relay delivery as the queue holds it."""

    id: int
    message_id: int
    domain: str
    envelope_from: str
    recipients: tuple[str, ...]
    state: str
    attempts: int
    next_attempt_at: float
    last_reply: str | None
    created_at: float
    updated_at: float
    subject: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "message_id": self.message_id,
            "domain": self.domain,
            "from": self.envelope_from or "<>",
            "recipients": list(self.recipients),
            "subject": self.subject,
            "state": self.state,
            "attempts": self.attempts,
            "next_attempt_at": iso_utc(self.next_attempt_at),
            "last_reply": self.last_reply,
            "queued_at": iso_utc(self.created_at),
        }


@dataclass(frozen=True)
class MessageFilter:
    """``to``: a mailbox address, or a domain; ``sender``: From or envelope sender."""

    to: str | None = None
    sender: str | None = None
    subject: str | None = None
    folder: str | None = None
    after_id: int = 0


@dataclass(frozen=True)
class MessageRecord:
    """One copy of a message in one mailbox folder, as listings show it."""

    id: int
    message_id: int
    mailbox: str
    folder: str
    uid: int
    flags: tuple[str, ...]
    held: bool
    from_addr: str | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str | None
    date: str | None
    header_message_id: str | None
    size: int
    received_at: float
    envelope_from: str

    def as_json(self, journey: tuple[Hop, ...] = ()) -> dict[str, Any]:
        """The message JSON of DESIGN.md, plus ``folder``, ``flags`` and ``envelope_from``."""
        return {
            "id": self.id,
            "mailbox": self.mailbox,
            "folder": self.folder,
            "from": self.from_addr or self.envelope_from or None,
            "to": list(self.to),
            "cc": list(self.cc),
            "subject": self.subject,
            "date": self.date,
            "message_id": self.header_message_id,
            "size": self.size,
            "received_at": iso_utc(self.received_at),
            "held": self.held,
            "flags": list(self.flags),
            "envelope_from": self.envelope_from,
            "journey": [hop.as_json() for hop in journey],
        }
