"""The webmail: a page at ``/`` whose server side is an IMAP client of the sandbox.

``setup_webmail(app, runtime)`` adds the page, its static files, its JSON endpoints and
its WebSocket under ``/webmail/`` to an aiohttp application. Each browser session holds
its own IMAP connection to the sandbox (logged in as that user, kept in IDLE) and sends
over SMTP submission with AUTH, so the last step of the journey is as real as the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from sandbox.webmail.sessions import Sessions
from sandbox.webmail.views import RUNTIME, SESSIONS, connector, routes

if TYPE_CHECKING:  # the runtime starts the HTTP listener, which sets the webmail up
    from sandbox.runtime import Runtime

__all__ = ["SESSION_IDLE_SECONDS", "setup_webmail"]

SESSION_IDLE_SECONDS = 30 * 60.0


def setup_webmail(
    app: web.Application, runtime: Runtime, *, session_idle: float = SESSION_IDLE_SECONDS
) -> None:
    """Serve the webmail from ``app``; ``session_idle``: seconds a session with no page
    open lives after its last request (then its IMAP connection logs out)."""
    sessions = Sessions(connector(runtime), session_idle)
    app[SESSIONS] = sessions
    app[RUNTIME] = runtime

    async def end_sessions(app: web.Application) -> None:
        await sessions.end_all()

    # on_shutdown runs before the runtime stops its IMAP listener: the sessions log out.
    app.on_shutdown.append(end_sessions)
    routes(app)
