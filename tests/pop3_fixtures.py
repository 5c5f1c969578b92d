"""POP3 servers on port 0 over a sandbox's store, in its background-thread loop, for real
clients."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

from sandbox.config import Account, Config, load_config
from sandbox.events import Event
from sandbox.pop3 import Pop3Server, Pop3Settings, StorePop3Backend, start_pop3_server
from sandbox.runtime import Runtime
from sandbox.store import Copy, MessageFilter, MessageRecord, NewMessage, SqliteStore
from sandbox.testing import Sandbox
from sandbox.tls import SandboxTLS

T = TypeVar("T")


def mail(subject: str, body: str = "Hello.\r\n", to: str = "larry@beta.test") -> bytes:
    return (
        f"From: Mikaela <mikaela@alpha.test>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@alpha.test>\r\n\r\n{body}"
    ).encode()


class Pop3Harness:
    """A sandbox (``sandbox.testing``) with POP3 servers of the test's own settings on
    its store: a plain one offering STLS and a POP3S one."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        accounts: tuple[Account, ...] = (),
        settings: Pop3Settings | None = None,
    ) -> None:
        config = load_config(env={}, flags={"data": str(tmp_path / "pop3.sqlite3")})
        self.config: Config = replace(config, accounts=accounts)
        self.sandbox = Sandbox(config=self.config)
        self.settings = settings or Pop3Settings()
        self.tls = SandboxTLS(tmp_path / "tls", ["pop.beta.test"])
        self.store: SqliteStore | None = None
        self.backend: StorePop3Backend | None = None
        self.plain: Pop3Server | None = None
        self.secure: Pop3Server | None = None

    def __enter__(self) -> Pop3Harness:
        self.sandbox.start()
        try:
            self.sandbox.call(self._start)
        except BaseException:
            self.sandbox.close()
            raise
        return self

    @property
    def events(self) -> list[Event]:
        return self.sandbox.events

    def call(self, func: Callable[[], Awaitable[T]]) -> T:
        """Run ``func()`` in the sandbox's loop (where the servers and the store live)."""
        return self.sandbox.call(lambda _: func())

    async def _start(self, runtime: Runtime) -> None:
        self.store = runtime.store
        self.backend = StorePop3Backend(self.store, self.config)
        common: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "hostname": "pop.beta.test"}
        self.plain = await start_pop3_server(
            self.backend,
            starttls_context=self.tls.server_context(),
            settings=self.settings,
            **common,
        )
        self.secure = await start_pop3_server(
            self.backend, ssl_context=self.tls.server_context(), settings=self.settings, **common
        )

    def __exit__(self, *exc: object) -> None:
        async def stop(runtime: Runtime) -> None:
            for server in (self.plain, self.secure):
                if server is not None:
                    await server.close()

        try:
            self.sandbox.call(stop)
        finally:
            self.sandbox.close()

    @property
    def address(self) -> tuple[str, int]:
        assert self.plain is not None
        return self.plain.address

    @property
    def tls_address(self) -> tuple[str, int]:
        assert self.secure is not None
        return self.secure.address

    def deliver(self, raw: bytes, *mailboxes: str) -> list[int]:
        """Put one message in each mailbox's INBOX; returns the entry ids."""
        assert self.store is not None
        store = self.store
        boxes = mailboxes or ("larry@beta.test",)
        message = NewMessage(raw, "mikaela@alpha.test", boxes, "test", tuple(map(Copy, boxes)))
        stored = self.call(lambda: store.ingest(message))
        return [c.entry_id for c in stored.copies]

    def messages(self, **flt: Any) -> list[MessageRecord]:
        assert self.store is not None
        store = self.store
        return self.call(lambda: store.list_messages(MessageFilter(**flt)))

    def journey_outcomes(self, record: MessageRecord) -> list[tuple[str, str]]:
        assert self.store is not None
        store = self.store
        return [(h.step, h.outcome) for h in self.call(lambda: store.journey(record.message_id))]

    def locked(self) -> set[str]:
        assert self.backend is not None
        return set(self.backend._locked)


@pytest.fixture
def pop3(tmp_path: Path) -> Iterator[Pop3Harness]:
    with Pop3Harness(tmp_path) as harness:
        yield harness
