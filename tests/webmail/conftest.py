"""A sandbox on port 0 with the webmail served beside it, as the HTTP listener serves it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web

from sandbox.runtime import Runtime
from sandbox.testing import Sandbox
from sandbox.webmail import setup_webmail
from sandbox.webmail.views import SESSIONS


@dataclass
class Webmail:
    sandbox: Sandbox
    url: str
    app: web.Application

    def session_count(self) -> int:
        return len(self.app[SESSIONS])

    def imap_connections(self) -> int:
        """Clients connected to the sandbox's IMAP listener right now."""

        async def count(runtime: Runtime) -> int:
            return sum(len(listener.connections) for listener in runtime._imap_listeners)

        return self.sandbox.call(count)


def start_webmail(sandbox: Sandbox, **options: Any) -> tuple[web.AppRunner, str, web.Application]:
    async def start(runtime: Runtime) -> tuple[web.AppRunner, str, web.Application]:
        app = web.Application()
        setup_webmail(app, runtime, **options)
        runner = web.AppRunner(app, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return runner, f"http://{host}:{port}", app

    return sandbox.call(start)


@pytest.fixture
def webmail_options() -> dict[str, Any]:
    return {}


@pytest.fixture
def webmail(webmail_options: dict[str, Any]) -> Iterator[Webmail]:
    with Sandbox() as sandbox:
        runner, url, app = start_webmail(sandbox, **webmail_options)
        try:
            yield Webmail(sandbox, url, app)
        finally:

            async def stop(runtime: Runtime) -> None:
                await runner.cleanup()

            sandbox.call(stop)
