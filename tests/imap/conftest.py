"""An IMAP server on the sandbox's own loop, port 0, and imaplib clients for it."""

from __future__ import annotations

import contextlib
import imaplib
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme

from sandbox.config import Config
from sandbox.imap import ImapListener, ImapSettings, start_imap_server
from sandbox.runtime import Runtime
from sandbox.store import Copy, NewMessage
from sandbox.testing import Sandbox
from tests.conftest import make_config


@dataclass
class ImapSandbox:
    """A ``sandbox.testing.Sandbox`` with IMAP (STARTTLS offered) and IMAPS listeners."""

    sandbox: Sandbox
    imap: ImapListener
    imaps: ImapListener
    ca: trustme.CA
    ca_file: Path
    clients: list[imaplib.IMAP4] = field(default_factory=list)
    sockets: list[socket.socket] = field(default_factory=list)

    def raw(self) -> socket.socket:
        """A plain socket to the IMAP port, closed at the end of the test."""
        sock = socket.create_connection(self.imap.address, timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sockets.append(sock)
        return sock

    @property
    def address(self) -> tuple[str, int]:
        return self.imap.address

    def client(self, user: str | None = None, password: str = "any") -> imaplib.IMAP4:
        host, port = self.imap.address
        client = imaplib.IMAP4(host, port, timeout=10)
        nodelay(client)
        self.clients.append(client)
        if user is not None:
            client.login(user, password)
        return client

    def tls_client(self, user: str | None = None) -> imaplib.IMAP4_SSL:
        host, port = self.imaps.address
        context = ssl.create_default_context(cafile=str(self.ca_file))
        client = imaplib.IMAP4_SSL(host, port, ssl_context=context, timeout=10)
        nodelay(client)
        self.clients.append(client)
        if user is not None:
            client.login(user, "any")
        return client

    def deliver(
        self,
        to: str,
        subject: str = "hello",
        body: str = "hi\r\n",
        *,
        folder: str = "INBOX",
        raw: bytes | None = None,
        flags: tuple[str, ...] = (),
    ) -> None:
        """Store a message the way SMTP delivery does (one ingest path, one event)."""
        from sandbox.ingest import ingest

        data = (
            raw
            or (
                f"From: sender@alpha.test\r\nTo: {to}\r\nSubject: {subject}\r\n"
                f"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-ID: <{subject}@alpha.test>\r\n"
                f"\r\n{body}"
            ).encode()
        )
        message = NewMessage(
            raw=data,
            envelope_from="sender@alpha.test",
            envelope_to=(to,),
            source="test",
            copies=(Copy(to, folder, flags=flags),),
        )
        self.sandbox.call(lambda runtime: ingest(runtime.store, message))


def nodelay(client: imaplib.IMAP4) -> None:
    # Without it imaplib's literal + CRLF writes meet delayed ACKs: 40 ms per APPEND.
    client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def start_imap(
    sandbox: Sandbox, settings: ImapSettings, ca: trustme.CA
) -> tuple[ImapListener, ImapListener]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)

    async def start(runtime: Runtime) -> tuple[ImapListener, ImapListener]:
        from sandbox.imap import ImapBackend

        backend = ImapBackend(runtime.store, runtime.bus)
        plain = await start_imap_server(
            backend, runtime.bus, settings, host="127.0.0.1", port=0, starttls_context=server_ctx
        )
        secure = await start_imap_server(
            backend, runtime.bus, settings, host="127.0.0.1", port=0, ssl_context=server_ctx
        )
        return plain, secure

    return sandbox.call(start)


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


def imap_sandbox(
    tmp_path: Path, ca: trustme.CA, config: Config | None = None, **settings: Any
) -> Iterator[ImapSandbox]:
    config = config or make_config(tmp_path)
    ca_file = tmp_path / "imap-test-ca.pem"  # the sandbox keeps its own ca.pem beside the data
    ca.cert_pem.write_to_path(str(ca_file))
    with Sandbox(config=config) as sandbox:
        imap_settings = ImapSettings.from_config(config, **settings)
        plain, secure = start_imap(sandbox, imap_settings, ca)
        running = ImapSandbox(sandbox, plain, secure, ca, ca_file)
        try:
            yield running
        finally:
            for sock in running.sockets:
                sock.close()
            for client in running.clients:
                with contextlib.suppress(Exception):
                    client.shutdown()

            async def stop(runtime: Runtime) -> None:
                for listener in (plain, secure):
                    listener.close()
                for listener in (plain, secure):
                    await listener.wait_closed()
                plain.backend.close()

            sandbox.call(stop)


@pytest.fixture
def imap(tmp_path: Path, ca: trustme.CA) -> Iterator[ImapSandbox]:
    yield from imap_sandbox(tmp_path, ca)


Factory = Callable[..., Iterator[ImapSandbox]]
