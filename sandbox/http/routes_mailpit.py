"""Mailpit's REST API v1: the same paths, parameters, JSON field names and status codes,
so its clients (npm ``mailpit-api``, PyPI ``mailpit-api-client``, cypress-mailpit, …)
work unmodified. A Mailpit message is one copy in a mailbox folder; its ``ID`` is the
id ``mail-sandbox messages --json`` prints.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from aiohttp import web

from sandbox.http import changes, serialize
from sandbox.http.context import (
    Api,
    api,
    int_param,
    json_body,
    json_response,
    ok_text,
    parse_id,
)
from sandbox.http.errors import bad_request, not_found
from sandbox.http.search import SearchError, parse_search, zone
from sandbox.http.submit import release_message, send_message
from sandbox.store import http_views as views
from sandbox.store import tags as tag_store
from sandbox.store.http_views import SearchFilter

DEFAULT_LIMIT = 50
MAX_LIMIT = 10_000
# The message's own HTML runs in the browser only under this policy: no scripts, no
# requests anywhere but inline data (Mailpit's viewer does the same with a sandbox).
HTML_CSP = "default-src 'none'; img-src data: cid:; style-src 'unsafe-inline'; sandbox"

routes = web.RouteTableDef()


def _filter(request: web.Request) -> SearchFilter | None:
    query = request.query.get("query", "").strip()
    if not query:
        return None
    try:
        return parse_search(query, zone(request.query.get("tz")))
    except SearchError as exc:
        raise bad_request(str(exc)) from None


def _page(request: web.Request) -> tuple[int, int]:
    start = int_param(request, "start", 0, low=0, high=10**9)
    limit = int_param(request, "limit", DEFAULT_LIMIT, low=0, high=MAX_LIMIT)
    return start, limit or DEFAULT_LIMIT


async def _list(ctx: Api, flt: SearchFilter | None, start: int, limit: int) -> dict[str, Any]:
    total, unread = await ctx.counts()
    matching = total if flt is None else await views.count_matching(ctx.store, flt)
    rows = await views.page(ctx.store, flt, start=start, limit=limit)
    return serialize.messages_list(
        await ctx.summaries(rows),
        total=total,
        unread=unread,
        matching=matching,
        start=start,
        tags=await ctx.tag_names(),
    )


@routes.get("/api/v1/messages")
async def list_messages(request: web.Request) -> web.Response:
    start, limit = _page(request)
    return json_response(await _list(api(request), None, start, limit))


@routes.get("/api/v1/search")
async def search(request: web.Request) -> web.Response:
    flt = _filter(request)
    if flt is None:
        raise bad_request("say what to search for: ?query=from:ann subject:invoice")
    start, limit = _page(request)
    return json_response(await _list(api(request), flt, start, limit))


def _ids(body: dict[str, Any]) -> list[int] | None:
    """``IDs`` of a body (strings, as Mailpit sends them, or numbers); None when absent."""
    raw = body.get("IDs", body.get("ids"))
    if raw is None:
        return None
    if isinstance(raw, str | int):
        raw = [raw]
    if not isinstance(raw, list):
        raise bad_request('"IDs" must be a list of message IDs, like ["1", "2"]')
    return [parse_id(str(item)) for item in raw]


@routes.put("/api/v1/messages")
async def set_read(request: web.Request) -> web.Response:
    """``{"IDs": [...], "Read": true}``; or ``"Search"`` instead of IDs; neither: all."""
    ctx = api(request)
    body = await json_body(request, required=False)
    read = body.get("Read", body.get("read", False))
    if not isinstance(read, bool):
        raise bad_request('"Read" must be true or false')
    ids = _ids(body)
    search = body.get("Search")
    if ids is None and isinstance(search, str) and search.strip():
        try:
            flt = parse_search(search, zone(request.query.get("tz")))
            ids = await views.matching_ids(ctx.store, flt)
        except SearchError as exc:
            raise bad_request(str(exc)) from None
    if not ids:
        ids = await views.all_entry_ids(ctx.store)
    await changes.mark_read(ctx.store, ids, read)
    return ok_text()


@routes.delete("/api/v1/messages")
async def delete_messages(request: web.Request) -> web.Response:
    """``{"IDs": [...]}`` deletes those; no IDs deletes every message (also MailHog's
    ``DELETE /api/v1/messages``)."""
    ctx = api(request)
    ids = _ids(await json_body(request, required=False))
    if ids:
        await changes.delete(ctx.store, ids)
        return ok_text()
    await changes.clear(ctx.store)
    # Without a body this is MailHog's delete-all too, whose clients parse any body as
    # JSON: an empty 200 suits both (Mailpit's clients read the answer as text).
    return web.Response(status=200)


@routes.delete("/api/v1/search")
async def delete_search(request: web.Request) -> web.Response:
    ctx = api(request)
    flt = _filter(request)
    if flt is None:
        raise bad_request("say which messages to delete: ?query=from:ann")
    await changes.delete(ctx.store, await views.matching_ids(ctx.store, flt))
    return ok_text()


@routes.get("/api/v1/message/{id}")
async def get_message(request: web.Request) -> web.Response:
    """Everything about one message; reading it marks it read, as in Mailpit."""
    ctx = api(request)
    row = await ctx.row(request.match_info["id"])
    (parsed,) = await ctx.parsed([row])
    if not row.read:
        await changes.mark_read(ctx.store, [row.id], True)
        row = await views.summary(ctx.store, row.id) or row
    return json_response(serialize.message(row, parsed))


async def _raw(ctx: Api, ident: str) -> tuple[views.SummaryRow, bytes]:
    row = await ctx.row(ident)
    raw = await ctx.store.raw(row.message_id)
    if raw is None:
        raise not_found(f"message {ident} was deleted")
    return row, raw


@routes.get("/api/v1/message/{id}/headers")
async def headers(request: web.Request) -> web.Response:
    row, raw = await _raw(api(request), request.match_info["id"])
    return json_response(serialize.headers(raw, row.mailbox))


@routes.get("/api/v1/message/{id}/raw")
async def raw_source(request: web.Request) -> web.Response:
    _, raw = await _raw(api(request), request.match_info["id"])
    return web.Response(body=raw, content_type="text/plain", charset="utf-8")


@routes.get("/api/v1/message/{id}/part/{part}")
async def part(request: web.Request) -> web.Response:
    _, raw = await _raw(api(request), request.match_info["id"])
    part_id = request.match_info["part"]
    found = serialize.find_part(raw, part_id)
    if found is None:
        raise not_found(
            f"message {request.match_info['id']} has no part {part_id!r};"
            " its PartIDs are in Attachments and Inline of GET /api/v1/message/{ID}"
        )
    content_type, filename, data = found
    name = _safe_name(filename)
    # RFC 6266 §4.3: an ASCII filename for old clients, the UTF-8 one in filename*.
    ascii_name = name.encode("ascii", "replace").decode("ascii")
    disposition = f"inline; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
    headers = {"Content-Disposition": disposition}
    return web.Response(body=data, content_type=content_type, headers=headers)


def _safe_name(name: str) -> str:
    return "".join(c for c in name if c.isprintable() and c not in '"\\\r\n') or "part"


@routes.get("/view/{id}.html")
async def view_html(request: web.Request) -> web.Response:
    ctx = api(request)
    row = await ctx.row(request.match_info["id"])
    (parsed,) = await ctx.parsed([row])
    if not parsed.html:
        raise not_found(f"message {row.id} has no HTML part; try /view/{row.id}.txt")
    return web.Response(
        text=parsed.html,
        content_type="text/html",
        headers={"Content-Security-Policy": HTML_CSP, "X-Content-Type-Options": "nosniff"},
    )


@routes.get("/view/{id}.txt")
async def view_text(request: web.Request) -> web.Response:
    ctx = api(request)
    row = await ctx.row(request.match_info["id"])
    (parsed,) = await ctx.parsed([row])
    return web.Response(text=parsed.text, content_type="text/plain")


@routes.get("/api/v1/tags")
async def get_tags(request: web.Request) -> web.Response:
    return json_response(await api(request).tag_names())


def _tag_list(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise bad_request('"Tags" must be a list of names, like ["invoice", "urgent"]')
    return value


@routes.put("/api/v1/tags")
async def put_tags(request: web.Request) -> web.Response:
    """``{"IDs": [...], "Tags": [...]}`` replaces those messages' tags."""
    ctx = api(request)
    body = await json_body(request)
    ids = _ids(body)
    if not ids:
        raise bad_request('say which messages to tag: {"IDs": ["1"], "Tags": ["invoice"]}')
    await changes.set_tags(ctx.store, ids, _tag_list(body.get("Tags")))
    return ok_text()


@routes.put("/api/v1/tags/{tag}")
async def rename_tag(request: web.Request) -> web.Response:
    ctx = api(request)
    body = await json_body(request)
    name = body.get("Name")
    if not isinstance(name, str) or not tag_store.clean_tags([name]):
        raise bad_request('the body needs "Name": the new name (a-z A-Z 0-9 - . _ space)')
    old = request.match_info["tag"]
    if old.lower() not in {t.lower() for t in await tag_store.all_tags(ctx.store)}:
        raise not_found(f"no message has the tag {old!r}")
    await changes.rename_tag(ctx.store, old, name)
    return ok_text()


@routes.delete("/api/v1/tags/{tag}")
async def delete_tag(request: web.Request) -> web.Response:
    ctx = api(request)
    await changes.delete_tag(ctx.store, request.match_info["tag"])
    return ok_text()


@routes.post("/api/v1/send")
async def send(request: web.Request) -> web.Response:
    """Mailpit's send request, submitted over SMTP to the sandbox's submission server so
    it travels the whole journey; answers the ``ID`` of the first copy stored."""
    ctx = api(request)
    body = await json_body(request)
    entry_id = await send_message(ctx.runtime, body, request.headers.get("Authorization"))
    return json_response({"ID": str(entry_id)})


@routes.post("/api/v1/message/{id}/release")
async def release(request: web.Request) -> web.Response:
    """Re-send a message to other addresses through the submission server: fake domains
    get it by the relay, real ones are held as usual; nothing leaves the machine."""
    ctx = api(request)
    row, raw = await _raw(ctx, request.match_info["id"])
    body = await json_body(request)
    to = body.get("To")
    if not isinstance(to, list) or not to or not all(isinstance(a, str) for a in to):
        raise bad_request('the body needs "To": a list of addresses, like ["ann@beta.test"]')
    await release_message(
        ctx.runtime, row.envelope_from, to, raw, request.headers.get("Authorization")
    )
    return ok_text()


@routes.get("/api/v1/info")
async def info(request: web.Request) -> web.Response:
    ctx = api(request)
    total, unread = await ctx.counts()
    stats = ctx.stats
    accepted, accepted_size = await ctx.accepted()
    return json_response(
        serialize.info(
            version=ctx.version,
            database=ctx.store.path,
            size=ctx.database_size(),
            total=total,
            unread=unread,
            tags=await tag_store.all_tags(ctx.store),
            uptime=int(time.monotonic() - ctx.started),
            memory=ctx.memory(),
            accepted=accepted,
            accepted_size=accepted_size,
            rejected=stats.rejected,
            deleted=stats.deleted,
        )
    )


@routes.get("/api/v1/webui")
async def webui(request: web.Request) -> web.Response:
    ctx = api(request)
    endpoints = ctx.runtime.endpoints
    smtp = f"{endpoints.smtp[0]}:{endpoints.smtp[1]}" if endpoints else ""
    return json_response(serialize.webui(label="mail-sandbox", smtp=smtp))


@routes.get("/livez")
async def livez(request: web.Request) -> web.Response:
    return ok_text()


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    if api(request).runtime.endpoints is None:
        return web.Response(status=503, text="starting")
    return ok_text()
