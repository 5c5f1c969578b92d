"""Changes the API makes: commit through the store, then announce on the bus once, so
IMAP sessions, the TUI, ``wait`` and the events WebSocket all see them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import groupby

from sandbox.events import EntriesExpunged, Event, EventBus, FlagsChanged, MessagesCleared
from sandbox.store import SqliteStore
from sandbox.store import tags as tag_store

ORIGIN = "http"


@dataclass(frozen=True)
class TagsChanged(Event):
    """Tags of message copies changed through the HTTP API."""

    kind: str = field(init=False, default="tags.changed")
    entries: tuple[tuple[int, tuple[str, ...]], ...]  # (entry id, its tags now)


async def mark_read(store: SqliteStore, bus: EventBus, ids: Sequence[int], read: bool) -> int:
    """``\\Seen`` on or off (RFC 3501 §2.3.2); returns how many copies changed."""
    changed = await store.set_seen(ids, read)
    for (mailbox, folder), group in groupby(
        sorted(changed, key=lambda c: (c[2], c[3])), key=lambda c: (c[2], c[3])
    ):
        bus.publish(
            FlagsChanged(
                mailbox=mailbox,
                folder=folder,
                changes=tuple((c[0], c[1], c[4]) for c in group),
                origin=ORIGIN,
            )
        )
    return len(changed)


async def delete(store: SqliteStore, bus: EventBus, ids: Sequence[int]) -> int:
    """Delete copies (a message stays while the relay still needs it)."""
    removed = await store.delete_entries(ids)
    for (mailbox, folder), group in groupby(
        sorted(removed, key=lambda c: (c[2], c[3])), key=lambda c: (c[2], c[3])
    ):
        bus.publish(
            EntriesExpunged(
                mailbox=mailbox,
                folder=folder,
                entries=tuple((c[0], c[1]) for c in group),
                origin=ORIGIN,
            )
        )
    return len(removed)


async def clear(store: SqliteStore, bus: EventBus) -> int:
    count = await store.clear()
    bus.publish(MessagesCleared(count=count))
    return count


async def set_tags(
    store: SqliteStore, bus: EventBus, ids: Sequence[int], tags: Sequence[str]
) -> None:
    await _announce_tags(store, bus, await tag_store.set_tags(store, ids, tags))


async def rename_tag(store: SqliteStore, bus: EventBus, old: str, new: str) -> None:
    await _announce_tags(store, bus, await tag_store.rename_tag(store, old, new))


async def delete_tag(store: SqliteStore, bus: EventBus, tag: str) -> None:
    await _announce_tags(store, bus, await tag_store.delete_tag(store, tag))


async def _announce_tags(store: SqliteStore, bus: EventBus, ids: Sequence[int]) -> None:
    if not ids:
        return
    now = await tag_store.tags_of(store, ids)
    bus.publish(TagsChanged(entries=tuple((i, tuple(now.get(i, ()))) for i in ids)))
