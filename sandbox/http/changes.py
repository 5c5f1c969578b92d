"""Changes the API makes. The store commits each one and then announces it on the bus
(and, through the change feed, to every other process), so IMAP sessions, the TUI,
``wait`` and the events WebSocket all see them (tags too: ``TagsChanged``)."""

from __future__ import annotations

from collections.abc import Sequence

from sandbox.store import SqliteStore
from sandbox.store import tags as tag_store

ORIGIN = "http"


async def mark_read(store: SqliteStore, ids: Sequence[int], read: bool) -> int:
    """``\\Seen`` on or off (RFC 3501 §2.3.2); returns how many copies changed."""
    return len(await store.set_seen(ids, read, origin=ORIGIN))


async def delete(store: SqliteStore, ids: Sequence[int]) -> int:
    """Delete copies (a message stays while the relay still needs it)."""
    return len(await store.delete_entries(ids, origin=ORIGIN))


async def clear(store: SqliteStore) -> int:
    """Every copy goes; mail the relay still has to deliver stays queued."""
    return await store.clear()


async def set_tags(store: SqliteStore, ids: Sequence[int], tags: Sequence[str]) -> None:
    await tag_store.set_tags(store, ids, tags)


async def rename_tag(store: SqliteStore, old: str, new: str) -> None:
    await tag_store.rename_tag(store, old, new)


async def delete_tag(store: SqliteStore, tag: str) -> None:
    await tag_store.delete_tag(store, tag)
