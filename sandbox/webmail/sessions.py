"""Browser sessions: a cookie, a CSRF token, and the IMAP connection behind them.

A session begins when IMAP accepts the login and ends on logout, when it has been idle
for ``idle_seconds`` with no page open (no WebSocket), or when the sandbox stops; its
IMAP connection ends with it (LOGOUT), so the sandbox sees the client leave.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sandbox.webmail import imapwire as W
from sandbox.webmail.imap_client import ImapFailure, MailConnection

log = logging.getLogger(__name__)

ALL_USER = "all"
MAX_SESSIONS = 64
RAW_CACHE = 8  # messages per session kept for the frame, raw view and downloads


@dataclass
class WebSession:
    token: str
    csrf: str
    user: str
    password: str
    imap: MailConnection
    last_seen: float = field(default_factory=time.monotonic)
    sockets: set[web.WebSocketResponse] = field(default_factory=set)
    raw: OrderedDict[tuple[str, int], bytes] = field(default_factory=OrderedDict)

    @property
    def is_all(self) -> bool:
        return self.user == ALL_USER

    def remember(self, folder: str, uid: int, raw: bytes) -> None:
        self.raw[(folder, uid)] = raw
        self.raw.move_to_end((folder, uid))
        while len(self.raw) > RAW_CACHE:
            self.raw.popitem(last=False)

    def push(self, message: dict[str, Any]) -> None:
        """Tell every open page; a closed socket is dropped, never an error here."""
        text = json.dumps(message)
        for socket in list(self.sockets):
            if socket.closed:
                self.sockets.discard(socket)
                continue
            task = asyncio.get_running_loop().create_task(socket.send_str(text))
            task.add_done_callback(_quiet)


def _quiet(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("webmail: a page went away mid-push: %s", task.exception())


class SessionError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


Connect = Callable[[str, str, Callable[[str, W.Changes], None]], MailConnection]


class Sessions:
    def __init__(self, connect: Connect, idle_seconds: float) -> None:
        self._connect = connect
        self.idle_seconds = idle_seconds
        self._by_token: dict[str, WebSession] = {}
        self._reaper: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._by_token)

    async def begin(self, user: str, password: str) -> WebSession:
        self._start_reaper()
        if len(self._by_token) >= MAX_SESSIONS:
            raise SessionError(
                503, f"{MAX_SESSIONS} webmail sessions are open already; log out of one first"
            )
        holder: dict[str, WebSession] = {}

        def changed(folder: str, what: W.Changes) -> None:
            session = holder.get("session")
            if session is not None:
                session.push(_change_message(folder, what, session.imap.closed))

        imap = self._connect(user, password, changed)
        try:
            await imap.open()
        except ImapFailure as exc:
            raise SessionError(exc.status, str(exc)) from exc
        session = WebSession(
            secrets.token_urlsafe(32), secrets.token_urlsafe(32), user, password, imap
        )
        holder["session"] = session
        self._by_token[session.token] = session
        return session

    def find(self, token: str | None) -> WebSession | None:
        session = self._by_token.get(token) if token else None
        if session is None:
            return None
        if session.imap.closed:  # the server ended it (stopped, or timed us out)
            self._by_token.pop(session.token, None)
            return None
        session.last_seen = time.monotonic()
        return session

    async def end(self, session: WebSession) -> None:
        self._by_token.pop(session.token, None)
        for socket in list(session.sockets):
            with contextlib.suppress(Exception):
                await socket.close(code=4001, message=b"logged out")
        session.sockets.clear()
        await session.imap.close()

    async def end_all(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        for session in list(self._by_token.values()):
            await self.end(session)

    async def reap(self) -> int:
        """End sessions idle for too long with no page open; how many ended."""
        now = time.monotonic()
        stale = [
            s
            for s in self._by_token.values()
            if s.imap.closed
            or (not any(not w.closed for w in s.sockets) and now - s.last_seen > self.idle_seconds)
        ]
        for session in stale:
            await self.end(session)
        return len(stale)

    def _start_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(self._reap_forever())

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(min(60.0, max(0.2, self.idle_seconds / 4)))
            try:
                await self.reap()
            except Exception:  # one bad session must not stop expiry for the rest
                log.exception("webmail: could not end an expired session")


def _change_message(folder: str, what: W.Changes, closed: bool) -> dict[str, Any]:
    if closed:
        return {"type": "ended", "text": "The IMAP session ended; log in again."}
    return {
        "type": "changed",
        "folder": folder,
        "exists": what.exists,
        "expunged": len(what.expunged),
        "flags": len(what.flags),
    }
