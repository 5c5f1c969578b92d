"""A sandbox running in a background thread, so tests can use blocking clients."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import pytest

from sandbox.config import Config
from sandbox.events import Event
from sandbox.runtime import Endpoints, Runtime
from sandbox.store import Hop, MessageFilter, MessageRecord, SqliteStore

T = TypeVar("T")


class LoopThread:
    """An event loop running in a daemon thread, for blocking test code to drive."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start_loop(self) -> None:
        self._thread.start()

    def stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def call(self, func: Callable[[], Awaitable[T]], timeout: float = 30) -> T:
        async def run() -> T:
            return await func()

        future: Future[T] = asyncio.run_coroutine_threadsafe(run(), self._loop)
        return future.result(timeout)


class ThreadedSandbox(LoopThread):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config
        self.runtime = Runtime(config)
        self.events: list[Event] = []
        self.endpoints: Endpoints | None = None

    def __enter__(self) -> ThreadedSandbox:
        self.start_loop()
        self.endpoints = self.call(self.runtime.start)
        self.runtime.bus.listen(self.events.append)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call(self.runtime.stop)
        finally:
            self.stop_loop()

    @property
    def smtp(self) -> tuple[str, int]:
        assert self.endpoints is not None
        return self.endpoints.smtp

    def mx(self, domain: str) -> tuple[str, int]:
        assert self.endpoints is not None
        return self.endpoints.mx[domain]

    @property
    def store(self) -> SqliteStore:
        return self.runtime.store

    def messages(self, **flt: Any) -> list[MessageRecord]:
        return self.call(lambda: self.store.list_messages(MessageFilter(**flt)))

    def wait_for(self, count: int = 1, timeout: float = 10.0, **flt: Any) -> list[MessageRecord]:
        """Matching messages once at least ``count`` are stored (the relay is asynchronous)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(**flt)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} messages matching {flt} arrived")
            time.sleep(0.02)

    def raw(self, record: MessageRecord) -> bytes:
        raw = self.call(lambda: self.store.raw(record.message_id))
        assert raw is not None
        return raw

    def journey(self, record: MessageRecord) -> tuple[Hop, ...]:
        return self.call(lambda: self.store.journey_of(record))

    def journal(self, kind: str) -> list[dict[str, Any]]:
        """Journaled events of one kind (the journal is written in the background)."""

        async def read() -> list[dict[str, Any]]:
            await self.store.write(_noop)  # everything queued before is committed after this
            return [e[3] for e in await self.store.events(kind=kind)]

        return self.call(read)


async def _noop(conn: Any) -> None:
    return None


@pytest.fixture(name="sandbox")
def threaded_sandbox(config: Config) -> Any:
    """The old ``sandbox`` fixture, for the files not yet on ``sandbox.testing``."""
    with ThreadedSandbox(config) as running:
        yield running
