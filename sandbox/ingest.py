"""The one ingest path: every message, from any server or tool, is stored here.

``SqliteStore.ingest`` commits the message, its copies, deliveries and feed rows in one
transaction and only then announces ``MessageStored`` (and ``DeliveriesQueued``) on the
store's bus: nothing is announced before it is committed, nothing committed goes
unannounced, and a listener's failure never turns the commit into an error.
"""

from __future__ import annotations

from sandbox.store import NewMessage, SqliteStore, StoredMessage


async def ingest(store: SqliteStore, message: NewMessage) -> StoredMessage:
    return await store.ingest(message)
