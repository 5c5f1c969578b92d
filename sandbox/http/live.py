"""``GET /api/events``: Mailpit's WebSocket of changes, fed by the runtime's bus.

Every change any part of the sandbox announces becomes Mailpit's event: a stored copy is
``new`` (with its message summary), flags and tags are ``update``, a removed copy is
``delete``, ``clear`` is ``truncate``, retention is ``prune``; ``stats`` (totals and
unread) follows changes at most every 250 ms, as Mailpit throttles it. Changes made by
other processes on the data file reach the bus through the change feed, so they arrive
here the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from sandbox.events import (
    EntriesCopied,
    EntriesExpunged,
    Event,
    FlagsChanged,
    MessagesCleared,
    MessagesMoved,
    MessagesPruned,
    MessageStored,
    Subscription,
    TagsChanged,
)
from sandbox.http import serialize
from sandbox.http.context import Api
from sandbox.store import SEEN
from sandbox.store import http_views as views

log = logging.getLogger(__name__)
STATS_INTERVAL = 0.25
SEND_TIMEOUT = 5.0  # a client that cannot take an event in this long is dropped


def _seen(flags: tuple[str, ...]) -> bool:
    return any(f.lower() == SEEN.lower() for f in flags)


class EventHub:
    """Translates bus events into Mailpit's and sends them to every connected socket."""

    def __init__(self, ctx: Api) -> None:
        self.ctx = ctx
        self.clients: set[web.WebSocketResponse] = set()
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._stats_due: asyncio.TimerHandle | None = None
        self._stats_tasks: set[asyncio.Task[None]] = set()

    async def start(self, app: web.Application) -> None:
        self._subscription = self.ctx.runtime.bus.subscribe()
        self._task = asyncio.get_running_loop().create_task(self._run(self._subscription))

    async def stop(self, app: web.Application) -> None:
        if self._stats_due is not None:
            self._stats_due.cancel()
        for task in (self._task, *self._stats_tasks):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._subscription is not None:
            self._subscription.close()
        for ws in list(self.clients):
            await ws.close(code=1001, message=b"the sandbox is stopping")

    async def _run(self, subscription: Subscription) -> None:
        while True:
            event = await subscription.get()
            try:
                await self.handle(event)
            except asyncio.CancelledError:
                raise
            except Exception:  # the store is closing, or a row went meanwhile
                log.exception("events: could not announce %s", event.kind)

    async def handle(self, event: Event) -> None:
        messages = await self.translate(event)
        if not messages:
            return
        for message in messages:
            await self.broadcast(message)
        self._schedule_stats()

    async def translate(self, event: Event) -> list[dict[str, Any]]:
        """Mailpit's events for one bus event (none for events Mailpit has no name for)."""
        ctx = self.ctx
        if isinstance(event, EntriesExpunged | MessagesCleared):
            ctx.stats.deleted += (
                len(event.entries) if isinstance(event, EntriesExpunged) else event.count
            )
        if not self.clients:
            return []
        if isinstance(event, MessageStored):
            return await self._new([entry[0] for entry in event.entries])
        if isinstance(event, EntriesCopied):
            return await self._new([entry[0] for entry in event.entries])
        if isinstance(event, MessagesMoved):
            gone = [serialize.event("delete", {"ID": str(m[0])}) for m in event.moves]
            return gone + await self._new([m[1] for m in event.moves])
        if isinstance(event, FlagsChanged):
            return [
                serialize.event(
                    "update",
                    {"ID": str(entry), "Read": any(f.lower() == SEEN.lower() for f in flags)},
                )
                for entry, _, flags in event.changes
            ]
        if isinstance(event, TagsChanged):
            return [
                serialize.event("update", {"ID": str(entry), "Tags": list(tags)})
                for entry, tags in event.entries
            ]
        if isinstance(event, EntriesExpunged):
            return [serialize.event("delete", {"ID": str(e[0])}) for e in event.entries]
        if isinstance(event, MessagesCleared):
            return [serialize.event("truncate", None)]
        if isinstance(event, MessagesPruned):
            return [serialize.event("prune", None)]
        return []

    async def _new(self, entry_ids: list[int]) -> list[dict[str, Any]]:
        rows = await views.summaries(self.ctx.store, entry_ids)
        return [serialize.event("new", s) for s in await self.ctx.summaries(rows)]

    async def broadcast(self, message: dict[str, Any]) -> None:
        text = json.dumps(message, ensure_ascii=False)
        for ws in list(self.clients):
            if ws.closed:
                self.clients.discard(ws)
                continue
            try:
                async with asyncio.timeout(SEND_TIMEOUT):
                    await ws.send_str(text)
            except (ConnectionError, TimeoutError, RuntimeError):
                self.clients.discard(ws)

    def _schedule_stats(self) -> None:
        if self._stats_due is None:
            self._stats_due = asyncio.get_running_loop().call_later(STATS_INTERVAL, self._stats_now)

    def _stats_now(self) -> None:
        self._stats_due = None
        task = asyncio.get_running_loop().create_task(self._send_stats())
        self._stats_tasks.add(task)
        task.add_done_callback(self._stats_tasks.discard)

    async def _send_stats(self) -> None:
        try:
            total, unread = await self.ctx.counts()
        except Exception:  # the store is closing
            return
        await self.broadcast(
            serialize.event(
                "stats", {"Total": total, "Unread": unread, "Version": self.ctx.version}
            )
        )

    async def handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30.0)
        await ws.prepare(request)
        self.clients.add(ws)
        try:
            async for message in ws:  # clients send nothing Mailpit acts on
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            self.clients.discard(ws)
        return ws
