"""The webmail's HTTP side: the page, its JSON under /webmail/api/, and its WebSocket.

Handlers are thin: check the session (and, for changes, the CSRF token), ask the
session's IMAP connection, render JSON. Every error is ``{"Error": "..."}`` with the
status that fits.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import WSMsgType, web

from sandbox.store.webmail_views import copy_id
from sandbox.webmail import compose as C
from sandbox.webmail import imapwire as W
from sandbox.webmail import render
from sandbox.webmail.imap_client import LIST_HEADER_SECTION, ImapFailure, MailConnection
from sandbox.webmail.sessions import ALL_USER, SessionError, Sessions, WebSession

if TYPE_CHECKING:  # the runtime starts the HTTP listener, which sets the webmail up
    from sandbox.runtime import Runtime

STATIC = Path(__file__).parent / "static"
COOKIE = "mail_sandbox_webmail"
CSRF_HEADER = "X-CSRF-Token"
PAGE_LIMIT = 200
MAX_FIELD = 10_000
MAX_BODY = 1_000_000
SESSIONS: web.AppKey[Sessions] = web.AppKey("webmail_sessions", Sessions)
RUNTIME: web.AppKey[Runtime] = web.AppKey("webmail_runtime")
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'none';"
    " frame-ancestors 'none'"
)
Handler = Callable[[web.Request, WebSession], Awaitable[web.StreamResponse]]


class Problem(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


def error(status: int, text: str) -> web.Response:
    return web.json_response({"Error": text}, status=status)


# --- guards ------------------------------------------------------------------------------


def _same_origin(request: web.Request) -> bool:
    """A browser names the page that sent a request in Origin; it must be ours."""
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


def session_view(handler: Handler, *, changes: bool = False) -> Callable[..., Any]:
    async def view(request: web.Request) -> web.StreamResponse:
        session = request.app[SESSIONS].find(request.cookies.get(COOKIE))
        if session is None:
            return error(401, "not logged in (or the session expired): log in again")
        if changes:
            if not _same_origin(request):
                return error(403, "cross-site request refused")
            token = request.headers.get(CSRF_HEADER, "")
            if not secrets.compare_digest(token.encode(), session.csrf.encode()):
                return error(403, "missing or wrong CSRF token: reload the page")
        try:
            return await handler(request, session)
        except Problem as exc:
            return error(exc.status, str(exc))
        except (ValueError, C.ComposeError) as exc:
            return error(400, str(exc))
        except ImapFailure as exc:
            return error(exc.status, str(exc))

    return view


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise Problem(415, "send the request body as application/json")
    if (request.content_length or 0) > MAX_BODY:
        raise Problem(413, f"the request body is over {MAX_BODY} bytes")
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        raise Problem(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise Problem(400, "the request body must be a JSON object")
    return body


def _text(body: dict[str, Any], name: str, *, required: bool = True, limit: int = MAX_FIELD) -> str:
    value = body.get(name, "")
    if not isinstance(value, str):
        raise Problem(400, f"{name} must be a string")
    if required and not value.strip():
        raise Problem(400, f"{name} is required")
    if len(value) > limit:
        raise Problem(400, f"{name} is longer than {limit} characters")
    return value


def _uids(body: dict[str, Any]) -> list[int]:
    uids = body.get("uids")
    if not isinstance(uids, list) or not uids or len(uids) > 1000:
        raise Problem(400, "uids must be a list of 1 to 1000 message UIDs")
    if not all(isinstance(u, int) and not isinstance(u, bool) and u > 0 for u in uids):
        raise Problem(400, "uids must be positive integers")
    return uids


def _int(value: str | None, name: str, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise Problem(400, f"{name} must be a whole number") from None
    if not low <= number <= high:
        raise Problem(400, f"{name} must be between {low} and {high}")
    return number


def _folder_param(request: web.Request) -> str:
    folder = request.query.get("folder", "")
    if not folder or len(folder) > 1000:
        raise Problem(400, "folder is required")
    return folder


def where(session: WebSession, folder: str) -> tuple[str, str]:
    """(mailbox, folder) for an IMAP name: ``all`` sees ``larry@beta.test/INBOX``."""
    if not session.is_all:
        return session.user, folder
    mailbox, _, name = folder.partition("/")
    return mailbox, name


def _trash_of(session: WebSession, folder: str) -> str:
    mailbox, _ = where(session, folder)
    return f"{mailbox}/Trash" if session.is_all else "Trash"


# --- the page --------------------------------------------------------------------------


async def page(request: web.Request) -> web.StreamResponse:
    response = web.FileResponse(STATIC / "index.html")
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


# --- login -------------------------------------------------------------------------------


async def login(request: web.Request) -> web.StreamResponse:
    if not _same_origin(request):
        return error(403, "cross-site request refused")
    try:
        body = await _json_body(request)
        user = _text(body, "user", limit=320).strip().lower()
        password = _text(body, "password", required=False, limit=1000)
    except Problem as exc:
        return error(exc.status, str(exc))
    if user != ALL_USER and "@" not in user:
        return error(400, "log in with a mailbox address (larry@beta.test) or all")
    sessions = request.app[SESSIONS]
    old = sessions.find(request.cookies.get(COOKIE))
    if old is not None:
        await sessions.end(old)
    try:
        session = await sessions.begin(user, password)
    except SessionError as exc:
        return error(exc.status, str(exc))
    response = web.json_response(_whoami(session))
    response.set_cookie(
        COOKIE, session.token, httponly=True, samesite="Strict", path="/", secure=request.secure
    )
    return response


def _whoami(session: WebSession) -> dict[str, Any]:
    return {"user": session.user, "all": session.is_all, "csrf": session.csrf}


async def whoami(request: web.Request, session: WebSession) -> web.StreamResponse:
    return web.json_response(_whoami(session))


async def logout(request: web.Request, session: WebSession) -> web.StreamResponse:
    await request.app[SESSIONS].end(session)
    response = web.json_response({"user": None})
    response.del_cookie(COOKIE, path="/")
    return response


# --- reading -----------------------------------------------------------------------------


async def folders(request: web.Request, session: WebSession) -> web.StreamResponse:
    listed = [f for f in await session.imap.folders() if f.selectable]
    counts = await session.imap.status([f.name for f in listed])
    result = []
    for folder in listed:
        mailbox, name = where(session, folder.name)
        count = counts.get(folder.name, {})
        result.append(
            {
                "name": folder.name,
                "mailbox": mailbox,
                "folder": name,
                "special": folder.special_use,
                "messages": count.get("MESSAGES", 0),
                "unseen": count.get("UNSEEN", 0),
            }
        )
    return web.json_response({"folders": result})


async def messages(request: web.Request, session: WebSession) -> web.StreamResponse:
    folder = _folder_param(request)
    start = _int(request.query.get("start"), "start", 0, 0, 10_000_000)
    limit = _int(request.query.get("limit"), "limit", 50, 1, PAGE_LIMIT)
    query = request.query.get("q", "").strip() or None
    if query is not None and len(query) > 500:
        raise Problem(400, "the search is longer than 500 characters")
    total, fetched = await session.imap.page(folder, start, limit, query)
    rows = []
    for item in fetched:
        row = render.summary(item.sections.get(LIST_HEADER_SECTION, b""))
        row.update(_flags(item.flags))
        row.update(uid=item.uid, size=item.size, received=W.internaldate_iso(item.internaldate))
        rows.append(row)
    return web.json_response(
        {
            "folder": folder,
            "total": total,
            "start": start,
            "limit": limit,
            "query": query,
            "messages": rows,
        }
    )


def _flags(flags: tuple[str, ...]) -> dict[str, Any]:
    lowered = {f.lower() for f in flags}
    return {
        "flags": list(flags),
        "seen": "\\seen" in lowered,
        "flagged": "\\flagged" in lowered,
        "answered": "\\answered" in lowered,
    }


async def _raw(session: WebSession, folder: str, uid: int) -> tuple[bytes, tuple[str, ...]]:
    fetched = await session.imap.message(folder, uid)
    if fetched is None:
        raise Problem(404, f"no message with UID {uid} in {folder} (deleted or moved?)")
    raw = fetched.sections.get("BODY[]", b"")
    session.remember(folder, uid, raw)
    return raw, fetched.flags


async def _cached_raw(session: WebSession, folder: str, uid: int) -> bytes:
    cached = session.raw.get((folder, uid))
    return cached if cached is not None else (await _raw(session, folder, uid))[0]


def _uid_param(request: web.Request) -> int:
    return _int(request.query.get("uid"), "uid", 0, 1, 2**32 - 1)


async def message(request: web.Request, session: WebSession) -> web.StreamResponse:
    folder = _folder_param(request)
    uid = _uid_param(request)
    if not uid:
        raise Problem(400, "uid is required")
    raw, flags = await _raw(session, folder, uid)
    if "\\seen" not in {f.lower() for f in flags}:
        # Opening a message reads it, as in every mail client.
        await session.imap.set_flags(folder, [uid], ["\\Seen"], [])
        flags = (*flags, "\\Seen")
    body = render.message_json(raw)
    body.update(_flags(flags))
    mailbox, name = where(session, folder)
    body.update(
        folder=folder,
        uid=uid,
        mailbox=mailbox,
        id=await copy_id(request.app[RUNTIME].store, mailbox, name, uid),
    )
    return web.json_response(body)


async def frame(request: web.Request, session: WebSession) -> web.StreamResponse:
    """The HTML part alone, for the sandboxed frame, under a CSP that blocks every load."""
    folder = _folder_param(request)
    uid = _uid_param(request)
    raw = await _cached_raw(session, folder, uid)
    remote = request.query.get("images") == "1"
    response = web.Response(text=render.frame_html(raw), content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = render.html_policy(remote)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "private, no-store"
    return response


async def raw_source(request: web.Request, session: WebSession) -> web.StreamResponse:
    folder = _folder_param(request)
    uid = _uid_param(request)
    raw = await _cached_raw(session, folder, uid)
    response = web.Response(body=raw, content_type="text/plain", charset="utf-8")
    if request.query.get("download") == "1":
        response.headers["Content-Disposition"] = f'attachment; filename="message-{uid}.eml"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


async def attachment(request: web.Request, session: WebSession) -> web.StreamResponse:
    folder = _folder_param(request)
    uid = _uid_param(request)
    index = _int(request.query.get("index"), "index", 0, 0, 10_000)
    raw = await _cached_raw(session, folder, uid)
    found = render.attachments(raw)
    if index >= len(found):
        raise Problem(404, f"the message has {len(found)} attachments; there is no number {index}")
    item = found[index]
    # Always a download, never rendered here: an attached .html must not run as our page.
    response = web.Response(body=render.attachment_bytes(item.part))
    response.content_type = "application/octet-stream"
    response.headers["Content-Disposition"] = _disposition(item.filename)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def _disposition(filename: str) -> str:
    ascii_name = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename
    )
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


# --- changing ----------------------------------------------------------------------------


async def flags(request: web.Request, session: WebSession) -> web.StreamResponse:
    body = await _json_body(request)
    folder = _text(body, "folder", limit=1000)
    uids = _uids(body)
    allowed = {"\\seen": "\\Seen", "\\flagged": "\\Flagged", "\\answered": "\\Answered"}
    changes: dict[str, list[str]] = {}
    for name in ("add", "remove"):
        values = body.get(name, [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise Problem(400, f"{name} must be a list of flags")
        unknown = [v for v in values if v.lower() not in allowed]
        if unknown:
            raise Problem(400, f"cannot set {unknown[0]}: use \\Seen, \\Flagged or \\Answered")
        changes[name] = [allowed[v.lower()] for v in values]
    await session.imap.set_flags(folder, uids, changes["add"], changes["remove"])
    return web.json_response({"folder": folder, "uids": uids})


async def move(request: web.Request, session: WebSession) -> web.StreamResponse:
    body = await _json_body(request)
    folder = _text(body, "folder", limit=1000)
    target = _text(body, "to", limit=1000)
    uids = _uids(body)
    if target == folder:
        raise Problem(400, "the messages are in that folder already")
    await session.imap.move(folder, uids, target)
    return web.json_response({"folder": folder, "to": target, "uids": uids})


async def delete(request: web.Request, session: WebSession) -> web.StreamResponse:
    """Into Trash; from Trash, gone for good."""
    body = await _json_body(request)
    folder = _text(body, "folder", limit=1000)
    uids = _uids(body)
    trash = _trash_of(session, folder)
    if folder == trash:
        await session.imap.expunge(folder, uids)
        return web.json_response({"folder": folder, "uids": uids, "expunged": True})
    await session.imap.move(folder, uids, trash)
    return web.json_response({"folder": folder, "to": trash, "uids": uids, "expunged": False})


async def send(request: web.Request, session: WebSession) -> web.StreamResponse:
    if session.is_all:
        raise Problem(403, "`all` has no address to send from: log in as a mailbox address to send")
    body = await _json_body(request)
    original: bytes | None = None
    source_at: tuple[str, int] | None = None
    mode = _text(body, "mode", required=False, limit=20) or "new"
    if mode not in ("new", "reply", "forward"):
        raise Problem(400, "mode must be new, reply or forward")
    if mode != "new":
        source = body.get("source")
        if not isinstance(source, dict):
            raise Problem(400, "a reply or forward needs source: {folder, uid}")
        src_folder = _text(source, "folder", limit=1000)
        src_uid = source.get("uid")
        if not isinstance(src_uid, int) or src_uid <= 0:
            raise Problem(400, "source.uid must be a message UID")
        original = await _cached_raw(session, src_folder, src_uid)
        source_at = (src_folder, src_uid)
    draft = C.Draft(
        sender=session.user,
        to=C.recipients(_text(body, "to", required=False)),
        cc=C.recipients(_text(body, "cc", required=False)),
        subject=_text(body, "subject", required=False, limit=998),
        body=_text(body, "body", required=False, limit=MAX_BODY),
        in_reply_to=original if mode == "reply" else None,
        forward=original if mode == "forward" else None,
    )
    runtime = request.app[RUNTIME]
    message = C.build(draft, runtime.config.smtp.hostname)
    endpoints = runtime.endpoints
    if endpoints is None:
        raise Problem(503, "the sandbox is not running")
    host, port = endpoints.smtp
    tls = runtime.tls.client_context() if runtime.tls is not None else None
    reply = await C.submit(
        message,
        C.envelope_recipients(draft),
        host=host,
        port=port,
        user=session.user,
        password=session.password,
        tls=tls,
    )
    if mode == "reply" and source_at is not None:
        # RFC 3501 §2.3.2: \Answered, as every mail client sets it after a reply.
        await session.imap.set_flags(source_at[0], [source_at[1]], ["\\Answered"], [])
    return web.json_response({"reply": reply, "message_id": message["Message-ID"]})


# --- live changes --------------------------------------------------------------------------


async def events(request: web.Request) -> web.StreamResponse:
    """The page's WebSocket: what IDLE reports on the folder it shows, as it happens."""
    session = request.app[SESSIONS].find(request.cookies.get(COOKIE))
    if session is None:
        return error(401, "not logged in (or the session expired): log in again")
    if not _same_origin(request):
        return error(403, "cross-site WebSocket refused")
    token = request.query.get("csrf", "")
    if not secrets.compare_digest(token.encode(), session.csrf.encode()):
        return error(403, "missing or wrong CSRF token: reload the page")
    socket = web.WebSocketResponse(heartbeat=30.0, max_msg_size=4096)
    await socket.prepare(request)
    session.sockets.add(socket)
    try:
        await socket.send_json({"type": "hello", "user": session.user})
        async for msg in socket:
            session.last_seen = _now()
            if msg.type == WSMsgType.ERROR:
                break
    finally:
        session.sockets.discard(socket)
        session.last_seen = _now()
    return socket


def _now() -> float:
    return time.monotonic()


# --- wiring --------------------------------------------------------------------------------


def connector(runtime: Runtime) -> Callable[..., MailConnection]:
    """How a session reaches the sandbox's IMAP listener: plain, or IMAPS when the
    configuration wants TLS before any login."""

    def connect(
        user: str, password: str, on_change: Callable[[str, W.Changes], None]
    ) -> MailConnection:
        endpoints = runtime.endpoints
        if endpoints is None:
            raise ImapFailure("the sandbox is not running")
        needs_tls = runtime.config.tls.require_before_auth and runtime.tls is not None
        name = "imaps" if needs_tls else "imap"
        host, port = endpoints.extra[name]
        tls = runtime.tls.client_context() if needs_tls and runtime.tls is not None else None
        restart = min(25 * 60.0, max(1.0, runtime.config.imap.idle_timeout * 0.8))
        return MailConnection(
            str(host),
            int(port),
            user,
            password,
            ssl_context=tls,
            on_change=on_change,
            idle_restart=restart,
        )

    return connect


def routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", page)
    r.add_static("/webmail/static/", STATIC, show_index=False, append_version=False)
    r.add_post("/webmail/api/login", login)
    r.add_get("/webmail/api/session", session_view(whoami))
    r.add_post("/webmail/api/logout", session_view(logout, changes=True))
    r.add_get("/webmail/api/folders", session_view(folders))
    r.add_get("/webmail/api/messages", session_view(messages))
    r.add_get("/webmail/api/message", session_view(message))
    r.add_get("/webmail/api/frame", session_view(frame))
    r.add_get("/webmail/api/raw", session_view(raw_source))
    r.add_get("/webmail/api/attachment", session_view(attachment))
    r.add_post("/webmail/api/flags", session_view(flags, changes=True))
    r.add_post("/webmail/api/move", session_view(move, changes=True))
    r.add_post("/webmail/api/delete", session_view(delete, changes=True))
    r.add_post("/webmail/api/send", session_view(send, changes=True))
    r.add_get("/webmail/api/events", events)
