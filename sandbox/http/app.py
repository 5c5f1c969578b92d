"""``make_app(runtime)``: the aiohttp application, and the listener ``Runtime`` runs.

The application lives in the runtime's own event loop (``AppRunner``/``TCPSite``), so
handlers call the store and the bus directly. Port 0 binds any free port, and the
listener reports the one it got.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web

from sandbox.http import middleware
from sandbox.http.context import API_KEY, Api
from sandbox.http.live import EventHub
from sandbox.http.routes_mailhog import routes as mailhog_routes
from sandbox.http.routes_mailpit import routes as mailpit_routes
from sandbox.http.routes_sandbox import routes as sandbox_routes
from sandbox.webmail import setup_webmail

if TYPE_CHECKING:  # the runtime imports this package to start it
    from sandbox.runtime import Runtime

log = logging.getLogger(__name__)
Address = tuple[str, int]


def make_app(runtime: Runtime) -> web.Application:
    """Every route behind one error middleware and one guard, the webmail's included."""
    config = runtime.config
    app = web.Application(
        middlewares=[middleware.errors, middleware.Guard(config).middleware()],
        # DESIGN.md: a request body larger than the SMTP size limit is refused (413).
        client_max_size=config.smtp.max_message_size,
    )
    ctx = Api(runtime)
    app[API_KEY] = ctx
    hub = EventHub(ctx)
    app.on_startup.append(hub.start)
    app.on_shutdown.append(hub.stop)
    app.router.add_get("/api/events", hub.handler)
    # The sandbox's own routes first: /api/v1/message/{id}/journey before Mailpit's.
    app.add_routes(sandbox_routes)
    app.add_routes(mailpit_routes)
    app.add_routes(mailhog_routes)
    setup_webmail(app, runtime)
    return app


class HttpListener:
    """The HTTP server of a running sandbox."""

    def __init__(self, runner: web.AppRunner, site: web.TCPSite, address: Address) -> None:
        self._runner = runner
        self._site = site
        self.address = address

    async def stop(self) -> None:
        await self._runner.cleanup()


async def start_http(runtime: Runtime, host: str, port: int) -> HttpListener:
    """Listen on ``host:port``; OSError when the port is taken (the runtime says so)."""
    runner = web.AppRunner(make_app(runtime), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True, backlog=1024)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0]  # the port actually bound (port 0: any free one)
    return HttpListener(runner, site, (str(bound[0]), int(bound[1])))
