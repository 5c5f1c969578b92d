"""Where the TUI's data comes from, and how it hears that something changed.

Two sources behind one interface:

- ``LiveSource``: the servers run in the TUI's own process (``mail-sandbox`` / ``up``).
  Changes come from the event bus the moment they are published.
- ``AttachedSource``: the servers run in another process (``mail-sandbox serve``) on the
  same data file (``mail-sandbox tui``). Data changes, whoever makes them, reach this
  process's bus through the store's change feed within 250 ms; SMTP sessions and DNS
  queries, which are journaled rather than fed, are seen by polling the journal's newest
  id (plus a few counters) every ``POLL_SECONDS``.

Either way the UI gets batches of event kinds and decides what to reload.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from sandbox.chaos import DomainChaos
from sandbox.config import Config
from sandbox.endpoints import read_endpoints
from sandbox.runtime import Runtime
from sandbox.store import SqliteStore, journal
from sandbox.store.tui_views import journal_signature

POLL_SECONDS = 0.3
STORE_CHANGED = "store.changed"  # something changed that no event names (attached mode)
# Events that name no rows to reload (counts only, or "you may have missed changes"):
# the UI rereads what it shows, as for STORE_CHANGED.
_REREAD = frozenset({"messages.pruned", "store.resynced", "folder.changed"})


def _with_reread(kinds: set[str]) -> frozenset[str]:
    return frozenset(kinds | {STORE_CHANGED} if kinds & _REREAD else kinds)


class Source(ABC):
    """The store, the endpoints to show, and a stream of what changed."""

    live: bool = False

    def __init__(self, config: Config) -> None:
        self.config = config
        self._store: SqliteStore | None = None

    @property
    def store(self) -> SqliteStore:
        if self._store is None:
            raise RuntimeError("the sandbox's data file is not open yet")
        return self._store

    @property
    def is_open(self) -> bool:
        return self._store is not None

    @abstractmethod
    async def open(self) -> None:
        """Open the store (and, live, start the servers)."""

    @abstractmethod
    async def close(self) -> None:
        """Let go of the store (and, live, stop the servers)."""

    @abstractmethod
    def changes(self) -> AsyncIterator[frozenset[str]]:
        """Kinds of change as they happen: from the bus, or from polling the store."""

    async def set_chaos(self, domain: str, chaos: DomainChaos) -> None:
        if not self.config.is_fake_domain(domain):
            raise ValueError(f"{domain} is not one of this sandbox's domains")
        await self.store.set_chaos(domain, chaos.to_json() if chaos.active else None)

    async def retry_now(self) -> int:
        return await self.store.retry_now()

    def ready(self) -> dict[str, Any]:
        """Where the servers listen, shaped like the ready line of ``serve``."""
        config = self.config
        # A wildcard listen address is reached through loopback.
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(config.host, config.host)
        return {
            "smtp": [host, config.smtp.port],
            "smtps": [host, config.smtps.port],
            "pop3": [host, config.pop3.port],
            "pop3s": [host, config.pop3s.port],
            "imap": [host, config.imap.port],
            "imaps": [host, config.imaps.port],
            "dns": [host, config.dns.port],
            "http": [host, config.http.port],
            "data": config.data,
        }

    def smtp_address(self) -> tuple[str, int]:
        host, port = self.ready().get("smtp") or Source.ready(self)["smtp"]
        return str(host), int(port)


class LiveSource(Source):
    live = True

    def __init__(self, runtime: Runtime, *, configured_endpoints: bool = False) -> None:
        super().__init__(runtime.config)
        self.runtime = runtime
        self._started_here = False
        self._configured_endpoints = configured_endpoints

    async def open(self) -> None:
        if self.runtime.endpoints is None:
            await self.runtime.start()
            self._started_here = True
        self._store = self.runtime.store

    async def close(self) -> None:
        if self._started_here:
            self._started_here = False
            await self.runtime.stop()
        self._store = None

    async def changes(self) -> AsyncIterator[frozenset[str]]:
        subscription = self.runtime.bus.subscribe()
        try:
            while True:
                kinds = {(await subscription.get()).kind}
                while (event := subscription.get_nowait()) is not None:
                    kinds.add(event.kind)
                yield _with_reread(kinds)
        finally:
            subscription.close()

    async def set_chaos(self, domain: str, chaos: DomainChaos) -> None:
        await self.runtime.set_chaos(domain, chaos)

    async def retry_now(self) -> int:
        count = await self.store.retry_now()
        self.runtime.relay.wake()
        return count

    def ready(self) -> dict[str, Any]:
        endpoints = self.runtime.endpoints
        if endpoints is None or self._configured_endpoints:
            return super().ready()
        return endpoints.ready()


class AttachedSource(Source):
    def __init__(self, config: Config, store: SqliteStore | None = None) -> None:
        super().__init__(config)
        self._given = store

    async def open(self) -> None:
        self._store = self._given or await SqliteStore.open(self.config.data)

    def ready(self) -> dict[str, Any]:
        """The ports the serve process recorded beside the data file; {} when it is not
        running (the header then says so, rather than showing configured ports)."""
        return read_endpoints(self.config.data) or {}

    async def close(self) -> None:
        if self._store is not None and self._given is None:
            await self._store.close()
        self._store = None

    async def changes(self) -> AsyncIterator[frozenset[str]]:
        store = self.store
        subscription = store.bus.subscribe()  # the change feed: every process's changes
        last_event = await store.read(journal.newest_id)
        signature = await journal_signature(store)
        loop = asyncio.get_running_loop()
        next_poll = loop.time() + POLL_SECONDS
        try:
            while True:
                kinds: set[str] = set()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, next_poll - loop.time())):
                        kinds.add((await subscription.get()).kind)
                while (event := subscription.get_nowait()) is not None:
                    kinds.add(event.kind)
                if loop.time() >= next_poll:
                    next_poll = loop.time() + POLL_SECONDS
                    current = await journal_signature(store)
                    if current != signature:
                        signature = current
                        kinds |= await store.read(partial(journal.kinds_since, after_id=last_event))
                        kinds.add(STORE_CHANGED)
                        last_event = int(current[0])
                if kinds:
                    yield _with_reread(kinds)
        finally:
            subscription.close()
