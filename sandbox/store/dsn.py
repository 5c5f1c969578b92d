"""DSN parameters of a delivery (RFC 3461): what the client asked to be told, and how.

Written in the same transaction as the delivery (``save``, called by the ingest), read
by the relay when an attempt ends (``of_delivery``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiosqlite

if TYPE_CHECKING:
    from sandbox.store.models import NewDelivery
    from sandbox.store.sqlite import SqliteStore

SUCCESS, FAILURE, DELAY, NEVER = "SUCCESS", "FAILURE", "DELAY", "NEVER"


@dataclass(frozen=True)
class RecipientDsn:
    notify: tuple[str, ...] = ()  # () = not given: failures only (RFC 3461 §4.1)
    orcpt: str | None = None  # "rfc822;bob@beta.test"


@dataclass(frozen=True)
class DeliveryDsn:
    ret: str | None = None  # FULL or HDRS; None: headers only, as without DSN
    envid: str | None = None
    recipients: Mapping[str, RecipientDsn] = field(default_factory=dict)

    def wants(self, recipient: str, event: str) -> bool:
        """Whether ``recipient``'s NOTIFY asks for a report of ``event``."""
        notify = self.recipients.get(recipient, RecipientDsn()).notify
        return event == FAILURE if not notify else event in notify

    def orcpt(self, recipient: str) -> str | None:
        return self.recipients.get(recipient, RecipientDsn()).orcpt

    def as_json(self) -> dict[str, Any]:
        return {
            "ret": self.ret,
            "envid": self.envid,
            "recipients": {
                rcpt: {"notify": list(r.notify), "orcpt": r.orcpt}
                for rcpt, r in self.recipients.items()
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeliveryDsn:
        recipients = {
            rcpt: RecipientDsn(tuple(r.get("notify") or ()), r.get("orcpt"))
            for rcpt, r in (data.get("recipients") or {}).items()
        }
        return cls(data.get("ret"), data.get("envid"), recipients)


async def save(
    conn: aiosqlite.Connection,
    delivery_rows: Sequence[Sequence[Any]],
    deliveries: Sequence[NewDelivery],
) -> None:
    """Store the DSN of each delivery just inserted (rows and deliveries in the same order)."""
    rows = [
        (json.dumps(delivery.dsn.as_json()), row[0])
        for row, delivery in zip(delivery_rows, deliveries, strict=True)
        if delivery.dsn is not None
    ]
    if rows:
        await conn.executemany("UPDATE deliveries SET dsn = ? WHERE id = ?", rows)


async def of_delivery(store: SqliteStore, delivery_id: int) -> DeliveryDsn:
    rows = await store.fetchall("SELECT dsn FROM deliveries WHERE id = ?", (delivery_id,))
    if not rows or rows[0][0] is None:
        return DeliveryDsn()
    return DeliveryDsn.from_json(json.loads(rows[0][0]))
