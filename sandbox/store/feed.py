"""The change feed across processes: other processes' commits, published on this bus.

Theory of operation: every change commits together with a row in the ``changes`` table
(``SqliteStore.commit``). Each open store runs one ``ChangeFeed``: every ``interval``
seconds it asks its own connection for ``PRAGMA data_version``, which moves only when
another connection committed; then it reads the rows after its cursor, skips its own
origin's, rebuilds the events and publishes them with ``remote=True``. Rows are only ever
read after their commit, and in sequence order, so each change is published once.

A writer killed mid-way leaves either its change and its row, or neither. A process that
starts (or restarts) begins at the newest row, since it reads the current state anyway. A
process that fell behind the trimmed window publishes ``StoreResynced`` instead of
guessing what it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiosqlite

from sandbox.events import EventBus, StoreResynced, event_from_row
from sandbox.store import changes

log = logging.getLogger(__name__)

INTERVAL = 0.02  # seconds between data_version checks: well inside the 250 ms promise


class ChangeFeed:
    def __init__(
        self, conn: aiosqlite.Connection, bus: EventBus, origin: str, interval: float = INTERVAL
    ) -> None:
        self._conn = conn
        self._bus = bus
        self._origin = origin
        self._interval = interval
        self._cursor = 0
        self._version = -1
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._cursor = await changes.last_seq(self._conn)
        self._version = await changes.data_version(self._conn)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.poll()
            except aiosqlite.Error:  # busy or closing: look again next tick
                log.debug("change feed: could not read the changes", exc_info=True)

    async def poll(self) -> int:
        """Publish what other processes committed since the last look; returns how many."""
        version = await changes.data_version(self._conn)
        if version == self._version:
            return 0
        self._version = version
        published = 0
        while True:
            newest, oldest, rows = await changes.since(self._conn, self._cursor, self._origin)
            if newest == self._cursor:
                return published
            if oldest > self._cursor + 1:
                self._bus.publish(StoreResynced(reason="the change feed fell behind", remote=True))
            self._cursor = newest
            for _, kind, payload in rows:
                try:
                    event = event_from_row(kind, payload)
                except (TypeError, ValueError):  # a row from another version of the sandbox
                    log.warning("change feed: cannot read a %s change", kind)
                    event = None
                if event is not None:
                    self._bus.publish(event)
                    published += 1
