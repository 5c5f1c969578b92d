"""The one ingest path: every message, from any server or tool, is stored here.

Storing and announcing happen together so that nothing is announced before it is
committed, and nothing committed goes unannounced.
"""

from __future__ import annotations

from sandbox.events import DeliveriesQueued, EventBus, MessageStored
from sandbox.store import NewMessage, SqliteStore, StoredMessage


async def ingest(store: SqliteStore, bus: EventBus, message: NewMessage) -> StoredMessage:
    stored = await store.ingest(message)
    bus.publish(
        MessageStored(
            message_id=stored.message_id,
            entries=tuple((c.entry_id, c.mailbox, c.folder) for c in stored.copies),
            envelope_from=message.envelope_from,
            subject=stored.subject,
            source=message.source,
        )
    )
    if stored.delivery_ids:
        bus.publish(
            DeliveriesQueued(message_id=stored.message_id, delivery_ids=stored.delivery_ids)
        )
    return stored
