"""One browser session's IMAP connection to the sandbox, with IDLE kept going.

Real webmail is an IMAP client of the mail server, and so is this: each logged-in
browser session owns one ``MailConnection``, logged in as that user on the sandbox's
own IMAP listener, where it shows up like any other client. Between requests the
connection sits in IDLE on the folder the page shows (RFC 2177), so new mail, flag
changes and expunges reach ``on_change`` at once; a request ends the IDLE with DONE,
runs its commands, and IDLE starts again. Commands never overlap: one lock.

aioimaplib routes an unsolicited EXISTS that arrives during one of its "async"
commands (FETCH, SEARCH, STORE, UID) to nobody, so the protocol is subclassed to see
every untagged line first: that keeps the message count — and with it the sequence
numbers the list pages by — right.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from aioimaplib import aioimaplib

from sandbox.webmail import imapwire as W

log = logging.getLogger(__name__)

T = TypeVar("T")
Lines = Sequence[bytes | bytearray]
ChangeListener = Callable[[str, W.Changes], None]
COMMAND_TIMEOUT = 30.0
# RFC 2177 §3: re-issue IDLE at least every 29 minutes; the sandbox may drop idle
# sessions sooner (imap.idle_timeout), so the caller passes what fits.
DEFAULT_IDLE_RESTART = 25 * 60.0


class ImapFailure(RuntimeError):
    """The IMAP server said NO or BAD, or the connection is gone; the text says which.

    ``status`` is the HTTP status it deserves: 404 for a folder that is not there, 400
    for another refusal, 502 when the IMAP side itself failed.
    """

    def __init__(self, text: str, status: int = 502) -> None:
        super().__init__(text)
        self.status = status


class _Protocol(aioimaplib.IMAP4ClientProtocol):  # type: ignore[misc]
    def __init__(self, loop: Any, conn_lost_cb: Any, on_untagged: Callable[[bytes], None]) -> None:
        super().__init__(loop, conn_lost_cb)
        self._on_untagged = on_untagged

    def _untagged_response(self, line: bytes) -> Any:
        self._on_untagged(line.replace(b"* ", b"", 1))
        return super()._untagged_response(line)


class _Client(aioimaplib.IMAP4):  # type: ignore[misc]
    def __init__(
        self, host: str, port: int, ssl_context: ssl.SSLContext | None, hooks: Any
    ) -> None:
        self._hooks = hooks
        super().__init__(
            host, port, timeout=COMMAND_TIMEOUT, conn_lost_cb=hooks.lost, ssl_context=ssl_context
        )

    def create_client(
        self,
        host: str,
        port: int,
        loop: Any,
        conn_lost_cb: Any = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        local_loop = loop if loop is not None else asyncio.get_running_loop()
        self.protocol = _Protocol(local_loop, conn_lost_cb, self._hooks.untagged)
        self._client_task = local_loop.create_task(
            local_loop.create_connection(lambda: self.protocol, host, port, ssl=ssl_context)
        )


class MailConnection:
    """Log in with ``open()``; every other method runs IMAP commands for one request."""

    def __init__(
        self,
        host: str,
        port: int,
        user: str,
        password: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        on_change: ChangeListener | None = None,
        idle_restart: float = DEFAULT_IDLE_RESTART,
    ) -> None:
        self.user = user
        self._password = password
        self._address = (host, port, ssl_context)
        self._on_change = on_change
        self._idle_restart = idle_restart
        self._client: Any = None
        self._lock = asyncio.Lock()
        self._idle_task: asyncio.Task[None] | None = None
        self._stop_idle = False
        self.selected: str | None = None
        self.exists = 0
        self.closed = False

    # --- life cycle -----------------------------------------------------------------

    async def open(self) -> None:
        host, port, ssl_context = self._address
        self._client = _Client(host, port, ssl_context, self)
        try:
            await self._client.wait_hello_from_server()
            response = await self._client.login(self.user, self._password)
        except (OSError, TimeoutError, aioimaplib.Error) as exc:
            await self._drop()
            raise ImapFailure(f"cannot reach the sandbox's IMAP server: {exc}") from exc
        if response.result != "OK":
            await self._drop()
            raise ImapFailure(_said(response, "login refused"), 401)
        # RFC 2971: say who we are, so the session is easy to tell apart in the logs.
        with contextlib.suppress(Exception):
            await self._client.id(name="mail-sandbox webmail", vendor="mail-sandbox")

    async def close(self) -> None:
        """LOGOUT and hang up; safe to call twice, or after the server went away."""
        if self.closed:
            return
        async with self._lock:
            await self._end_idle()
            if not self.closed and self._client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._client.logout(), 5.0)
            await self._drop()

    async def _drop(self) -> None:
        self.closed = True
        client, self._client = self._client, None
        if client is None:
            return
        transport = getattr(client.protocol, "transport", None)
        if transport is not None:
            transport.close()
        # aioimaplib keeps its helper tasks (IDLE waiters) in ``tasks`` and has no call that
        # ends them; cancelled here so none outlives the connection.
        for task in list(getattr(client, "tasks", ())) + list(client.protocol.tasks):
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(client._client_task, 1.0)

    # hooks the protocol calls

    def lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._on_change is not None and self.selected is not None:
            self._on_change(self.selected, W.Changes())

    def untagged(self, line: bytes) -> None:
        idling = self._client is not None and self._client.has_pending_idle()
        found = W.changes([line], flags_too=idling)
        if not found.any:
            return
        if found.exists is not None:
            self.exists = found.exists
        self.exists -= len(found.expunged)
        if self._on_change is not None and self.selected is not None:
            self._on_change(self.selected, found)

    # --- running commands -----------------------------------------------------------

    async def run(self, work: Callable[[Any], Awaitable[T]]) -> T:
        """End IDLE, run ``work(client)``, then IDLE again on the selected folder."""
        async with self._lock:
            if self.closed or self._client is None:
                raise ImapFailure("the IMAP session has ended; log in again")
            await self._end_idle()
            try:
                return await work(self._client)
            except (TimeoutError, aioimaplib.Error, OSError) as exc:
                raise ImapFailure(f"IMAP command failed: {exc}") from exc
            finally:
                if not self.closed and self.selected is not None:
                    self._begin_idle()

    async def _end_idle(self) -> None:
        task, self._idle_task = self._idle_task, None
        if task is None:
            return
        self._stop_idle = True
        client = self._client
        if client is not None and client.has_pending_idle():
            await client.stop_wait_server_push()
        try:
            await asyncio.wait_for(task, COMMAND_TIMEOUT)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
            await self._drop()
            raise ImapFailure("the IMAP server did not end IDLE; log in again") from None

    def _begin_idle(self) -> None:
        self._stop_idle = False
        self._idle_task = asyncio.get_running_loop().create_task(self._idle())

    async def _idle(self) -> None:
        client = self._client
        queue = client.protocol.idle_queue
        while not self._stop_idle and not self.closed:
            while not queue.empty():  # a stop meant for an IDLE that has ended already
                queue.get_nowait()
            try:
                idle = await client.idle_start(timeout=self._idle_restart)
            except (aioimaplib.Error, OSError) as exc:
                log.warning("webmail: IMAP IDLE refused for %s: %s", self.user, exc)
                return
            try:
                while not self._stop_idle and client.has_pending_idle():
                    push = await client.wait_server_push(timeout=self._idle_restart * 2)
                    if push == aioimaplib.STOP_WAIT_SERVER_PUSH:
                        break  # asked to stop, or time to re-issue IDLE
            except TimeoutError:
                pass
            finally:
                if not self.closed and client.has_pending_idle():
                    client.idle_done()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(idle, COMMAND_TIMEOUT)

    # --- what requests ask for --------------------------------------------------------

    async def folders(self) -> list[W.ListedFolder]:
        async def work(client: Any) -> list[W.ListedFolder]:
            return W.parse_list(_ok(await client.list('""', "*"), "LIST"))

        return await self.run(work)

    async def status(self, names: Sequence[str]) -> dict[str, dict[str, int]]:
        async def work(client: Any) -> dict[str, dict[str, int]]:
            found: dict[str, dict[str, int]] = {}
            for name in names:
                response = await client.status(W.mailbox_arg(name), "(MESSAGES UNSEEN)")
                if response.result == "OK":
                    found[name] = W.parse_status(response.lines)
            return found

        return await self.run(work)

    async def _select(self, client: Any, folder: str) -> None:
        if self.selected == folder:
            return
        self.selected = None
        response = await client.select(W.mailbox_arg(folder))
        _ok(response, f"SELECT {folder}")
        # The EXISTS of the SELECT reply went through ``untagged`` and set the count.
        self.selected = folder

    async def page(
        self, folder: str, start: int, limit: int, query: str | None
    ) -> tuple[int, list[W.Fetched]]:
        """Newest first: (how many match, the ``limit`` after the ``start`` newest)."""

        async def work(client: Any) -> tuple[int, list[W.Fetched]]:
            await self._select(client, folder)
            if query:
                text = W.search_text_arg(query)
                response = await client.uid_search("TEXT", text, charset="UTF-8")
                uids = sorted(W.parse_search(_ok(response, "SEARCH")), reverse=True)
                chosen = uids[start : start + limit]
                if not chosen:
                    return len(uids), []
                fetched = await _fetch(client, W.uid_set(chosen), LIST_ITEMS, by_uid=True)
                return len(uids), sorted(fetched, key=lambda f: -f.uid)
            total = self.exists
            high = total - start
            low = max(1, high - limit + 1)
            if high < 1:
                return total, []
            fetched = await _fetch(client, f"{low}:{high}", LIST_ITEMS, by_uid=False)
            return total, sorted(fetched, key=lambda f: -f.seq)

        return await self.run(work)

    async def message(self, folder: str, uid: int) -> W.Fetched | None:
        """The whole message (BODY.PEEK[]: reading it does not set \\Seen, §6.4.5)."""

        async def work(client: Any) -> W.Fetched | None:
            await self._select(client, folder)
            found = await _fetch(client, str(uid), "(UID FLAGS BODY.PEEK[])", by_uid=True)
            return next((f for f in found if f.uid == uid), None)

        return await self.run(work)

    async def set_flags(
        self, folder: str, uids: Sequence[int], add: Sequence[str], remove: Sequence[str]
    ) -> None:
        async def work(client: Any) -> None:
            await self._select(client, folder)
            for sign, flags in (("+", add), ("-", remove)):
                if flags:
                    response = await client.uid(
                        "STORE", W.uid_set(uids), f"{sign}FLAGS.SILENT", f"({' '.join(flags)})"
                    )
                    _ok(response, "STORE")

        await self.run(work)

    async def move(self, folder: str, uids: Sequence[int], target: str) -> None:
        async def work(client: Any) -> None:
            await self._select(client, folder)
            _ok(await client.uid("MOVE", W.uid_set(uids), W.mailbox_arg(target)), "MOVE")

        await self.run(work)

    async def expunge(self, folder: str, uids: Sequence[int]) -> None:
        """Gone for good: \\Deleted, then UID EXPUNGE of just those (RFC 4315 §2.1)."""

        async def work(client: Any) -> None:
            await self._select(client, folder)
            chosen = W.uid_set(uids)
            _ok(await client.uid("STORE", chosen, "+FLAGS.SILENT", "(\\Deleted)"), "STORE")
            _ok(await client.uid("EXPUNGE", chosen), "EXPUNGE")

        await self.run(work)


LIST_HEADER_SECTION = "BODY[HEADER.FIELDS (FROM TO CC SUBJECT DATE CONTENT-TYPE)]"
LIST_ITEMS = (
    "(UID FLAGS RFC822.SIZE INTERNALDATE " + LIST_HEADER_SECTION.replace("BODY", "BODY.PEEK") + ")"
)


async def _fetch(client: Any, which: str, items: str, *, by_uid: bool) -> list[W.Fetched]:
    if by_uid:
        response = await client.uid("FETCH", which, items)
    else:
        response = await client.fetch(which, items)
    return W.parse_fetch(_ok(response, "FETCH"))


def _ok(response: Any, what: str) -> Lines:
    if response.result != "OK":
        text = _said(response, f"{what} failed")
        missing = "NONEXISTENT" in text or "No such mailbox" in text or "TRYCREATE" in text
        raise ImapFailure(text, 404 if missing else 400)
    # The last line is the text of the tagged completion; the rest is untagged data.
    lines: Lines = response.lines[:-1]
    return lines


def _said(response: Any, fallback: str) -> str:
    last = response.lines[-1] if response.lines else b""
    text = last.decode("utf-8", "replace") if isinstance(last, bytes | bytearray) else ""
    return f"{fallback}: {text}" if text else fallback
