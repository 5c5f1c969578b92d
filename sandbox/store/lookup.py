"""Read views that put one id in front of the user: the copy id.

A message is stored once (``messages.id``, the *message id*) and filed as copies, one per
mailbox folder (``entries.id``, the *copy id*: the ``id`` of ``messages --json``). People
act on copies (``show``, ``links``, the TUI), so wherever a message id would be shown (the
relay queue, a bounce's ``about`` in a journey) these views show a copy id instead, and
``resolve`` takes either form: ``12`` is a copy, ``m7`` is message 7 (its first copy).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from sandbox.store.models import Delivery, Hop, MessageRecord, domain_of
from sandbox.store.sqlite import SqliteStore

MESSAGE_PREFIX = "m"


async def first_copies(store: SqliteStore, message_ids: Iterable[int]) -> dict[int, int]:
    """The lowest copy id still stored of each message (messages with none are left out)."""
    wanted = sorted(set(message_ids))
    if not wanted:
        return {}
    marks = ",".join("?" * len(wanted))
    rows = await store.fetchall(
        f"SELECT message_id, min(id) FROM entries WHERE message_id IN ({marks})"
        " GROUP BY message_id",
        wanted,
    )
    return {int(message_id): int(copy_id) for message_id, copy_id in rows}


def parse_id(text: str) -> tuple[str, int] | None:
    """``"12"`` → ("copy", 12); ``"m7"`` → ("message", 7); anything else → None."""
    text = text.strip().lower()
    kind = "copy"
    if text.startswith(MESSAGE_PREFIX):
        kind, text = "message", text[len(MESSAGE_PREFIX) :]
    if not text.isdigit():
        return None
    return kind, int(text)


async def resolve(store: SqliteStore, text: str) -> MessageRecord | None:
    """The copy a user means by ``text`` (see ``parse_id``); None if there is none."""
    parsed = parse_id(text)
    if parsed is None:
        return None
    kind, number = parsed
    if kind == "message":
        copy_id = (await first_copies(store, [number])).get(number)
        if copy_id is None:
            return None
        number = copy_id
    return await store.get_message(number)


async def journey_with_copy_ids(store: SqliteStore, record: MessageRecord) -> tuple[Hop, ...]:
    """The copy's journey with each bounce's ``about`` naming a copy id; the message id
    it replaced stays as ``about_message`` (both matter once the original is gone)."""
    hops = await store.journey_of(record)
    about = [int(h.detail["about"]) for h in hops if isinstance(h.detail.get("about"), int)]
    if not about:
        return hops
    copies = await first_copies(store, about)
    result = []
    for hop in hops:
        message_id = hop.detail.get("about")
        if isinstance(message_id, int):
            detail = {**hop.detail, "about": copies.get(message_id), "about_message": message_id}
            hop = replace(hop, detail=detail)
        result.append(hop)
    return tuple(result)


async def delivery_copies(store: SqliteStore, deliveries: Iterable[Delivery]) -> dict[int, int]:
    """Delivery id → the copy id to ``show`` for it (the sender's copy, usually Sent)."""
    deliveries = list(deliveries)
    copies = await first_copies(store, (d.message_id for d in deliveries))
    return {d.id: copies[d.message_id] for d in deliveries if d.message_id in copies}


async def relay_in_flight(store: SqliteStore, record: MessageRecord) -> bool:
    """True while the relay has not recorded the attempt that brought this copy.

    The MX server stores the copy (and, for exactly-once, marks the delivery done in the
    same commit); the relay records its reply, the journey's last hop, a moment later.
    """
    rows = await store.fetchall(
        "SELECT count(*) FROM messages m JOIN deliveries d ON d.message_id = m.parent_id"
        " WHERE m.id = ? AND d.domain = ? AND (d.state IN ('queued', 'deferred')"
        " OR NOT EXISTS (SELECT 1 FROM hops h WHERE h.message_id = d.message_id"
        " AND h.step = 'relay' AND h.at >= m.received_at"
        " AND json_extract(h.detail, '$.domain') = d.domain))",
        (record.message_id, domain_of(record.mailbox)),
    )
    return bool(rows[0][0])
