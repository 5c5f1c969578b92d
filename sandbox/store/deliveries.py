"""The relay queue: due deliveries, attempts and their outcome, the MX side of exactly once."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiosqlite

from sandbox.events import (
    DeliveryAttempted,
    Event,
)
from sandbox.store.changes import CommitJob
from sandbox.store.messages import ingest_events, ingest_many, insert_hops
from sandbox.store.models import (
    DEFERRED,
    DELIVERED,
    NOT_DONE,
    Delivery,
    Hop,
    NewMessage,
)

_DELIVERY_SELECT = (
    "SELECT d.id, d.message_id, d.domain, d.envelope_from, d.recipients, d.state, d.attempts,"
    " d.next_attempt_at, d.last_reply, d.created_at, d.updated_at, m.subject"
    " FROM deliveries d JOIN messages m ON m.id = d.message_id"
)


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row[0],
        message_id=row[1],
        domain=row[2],
        envelope_from=row[3],
        recipients=tuple(json.loads(row[4])),
        state=row[5],
        attempts=row[6],
        next_attempt_at=row[7],
        last_reply=row[8],
        created_at=row[9],
        updated_at=row[10],
        subject=row[11],
    )


async def due_deliveries(
    conn: aiosqlite.Connection, now: float, limit: int, exclude: Iterable[int] = ()
) -> list[Delivery]:
    excluded = json.dumps(sorted(exclude))
    rows = await conn.execute_fetchall(
        _DELIVERY_SELECT + " WHERE d.state IN ('queued', 'deferred') AND d.next_attempt_at <= ?"
        " AND d.id NOT IN (SELECT value FROM json_each(?))"
        " ORDER BY d.next_attempt_at, d.id LIMIT ?",
        (now, excluded, limit),
    )
    return [_delivery(row) for row in rows]


async def next_attempt_at(conn: aiosqlite.Connection, exclude: Iterable[int] = ()) -> float | None:
    rows = await conn.execute_fetchall(
        "SELECT min(next_attempt_at) FROM deliveries WHERE state IN ('queued', 'deferred')"
        " AND id NOT IN (SELECT value FROM json_each(?))",
        (json.dumps(sorted(exclude)),),
    )
    value = next(iter(rows))[0]
    return float(value) if value is not None else None


async def pending_deliveries(conn: aiosqlite.Connection) -> list[Delivery]:
    rows = await conn.execute_fetchall(
        _DELIVERY_SELECT + " WHERE d.state IN ('queued', 'deferred') ORDER BY d.id"
    )
    return [_delivery(row) for row in rows]


async def deliveries_of(conn: aiosqlite.Connection, message_id: int) -> list[Delivery]:
    rows = await conn.execute_fetchall(
        _DELIVERY_SELECT + " WHERE d.message_id = ? ORDER BY d.id", (message_id,)
    )
    return [_delivery(row) for row in rows]


def finish_attempt(
    delivery: Delivery,
    *,
    state: str,
    recipients: tuple[str, ...],
    next_attempt_at: float,
    last_reply: str | None,
    hops: Iterable[Hop],
    bounce: NewMessage | None = None,
) -> CommitJob[str]:
    """Record one attempt's outcome and its hops in one transaction; returns the state.

    Recipients an MX server of this sandbox already marked delivered (in its own
    commit, see ``NewMessage.delivered_for``) never come back into the queue, even if
    the relay did not hear that 250: the state says what is really left. ``bounce``,
    the DSN for recipients that failed, is stored in the same commit.
    """
    hops = tuple(hops)

    async def job(conn: aiosqlite.Connection) -> tuple[str, tuple[Event, ...]]:
        rows = await conn.execute_fetchall(
            "SELECT recipients, state FROM deliveries WHERE id = ?", (delivery.id,)
        )
        final = state
        left = recipients
        if rows:
            current_text, current_state = next(iter(rows))
            waiting = set(json.loads(current_text)) if current_state in NOT_DONE else set()
            left = tuple(r for r in recipients if r in waiting)
            if state == DEFERRED and not left:
                final = DELIVERED
        await conn.execute(
            "UPDATE deliveries SET state = ?, recipients = ?, attempts = attempts + 1,"
            " next_attempt_at = ?, last_reply = ?, updated_at = ? WHERE id = ?",
            (
                final,
                json.dumps(list(left)),
                next_attempt_at,
                last_reply,
                time.time(),
                delivery.id,
            ),
        )
        await insert_hops(conn, delivery.message_id, hops)
        event = DeliveryAttempted(
            delivery_id=delivery.id,
            message_id=delivery.message_id,
            domain=delivery.domain,
            state=final,
            attempt=delivery.attempts + 1,
            reply=last_reply or "",
        )
        if bounce is None:
            return final, (event,)
        [stored] = await ingest_many(conn, [bounce])
        return final, (event, *ingest_events(bounce, stored))

    return job


def retry_now() -> Callable[[aiosqlite.Connection], Awaitable[int]]:
    """Make every delivery not yet done due at once; returns how many."""

    async def job(conn: aiosqlite.Connection) -> int:
        cur = await conn.execute(
            "UPDATE deliveries SET next_attempt_at = ? WHERE state IN ('queued', 'deferred')",
            (time.time(),),
        )
        return cur.rowcount

    return job
