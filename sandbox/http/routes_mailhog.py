"""MailHog's API, for the older helpers (npm ``mailhog``, cypress-mailhog): v2 message
lists and search with MailHog's message JSON, and its v1 delete and release."""

from __future__ import annotations

from aiohttp import web

from sandbox.http import changes, serialize
from sandbox.http.context import Api, api, int_param, json_body, json_response, parse_id
from sandbox.http.errors import bad_request, not_found
from sandbox.http.submit import release_message
from sandbox.store import http_views as views
from sandbox.store.http_views import SearchFilter, Term

KINDS = {"from": "from", "to": "to", "containing": "text"}
DEFAULT_LIMIT = 50
MAX_LIMIT = 10_000

routes = web.RouteTableDef()


async def _items(ctx: Api, flt: SearchFilter | None, start: int, limit: int) -> web.Response:
    total = await views.count_matching(ctx.store, flt)
    rows = await views.page(ctx.store, flt, start=start, limit=limit)
    raws = await views.raws(ctx.store, [r.message_id for r in rows])
    items = [serialize.mailhog_message(row, raws.get(row.message_id, b"")) for row in rows]
    return json_response(serialize.mailhog_list(items, total=total, start=start))


def _page(request: web.Request) -> tuple[int, int]:
    start = int_param(request, "start", 0, low=0, high=10**9)
    limit = int_param(request, "limit", DEFAULT_LIMIT, low=0, high=MAX_LIMIT)
    return start, limit or DEFAULT_LIMIT


@routes.get("/api/v2/messages")
async def messages(request: web.Request) -> web.Response:
    start, limit = _page(request)
    return await _items(api(request), None, start, limit)


@routes.get("/api/v2/search")
async def search(request: web.Request) -> web.Response:
    kind = request.query.get("kind", "containing")
    if kind not in KINDS:
        raise bad_request(f"kind must be from, to or containing, got {kind!r}")
    query = request.query.get("query", "")
    if not query:
        raise bad_request("say what to search for: ?kind=to&query=larry@beta.test")
    start, limit = _page(request)
    return await _items(api(request), SearchFilter((Term(KINDS[kind], query),)), start, limit)


@routes.delete("/api/v1/messages/{id}")
async def delete_one(request: web.Request) -> web.Response:
    ctx = api(request)
    entry_id = parse_id(request.match_info["id"])
    if not await changes.delete(ctx.store, [entry_id]):
        raise not_found(f"no message with ID {entry_id}")
    return web.Response(status=200)


@routes.post("/api/v1/messages/{id}/release")
async def release(request: web.Request) -> web.Response:
    """MailHog's release names an SMTP server; the sandbox ignores it and re-sends to
    ``Email`` through its own submission server (nothing leaves the machine)."""
    ctx = api(request)
    row = await ctx.row(request.match_info["id"])
    body = await json_body(request)
    address = body.get("Email")
    if not isinstance(address, str) or not address:
        raise bad_request('the body needs "Email": the address to release the message to')
    raw = await ctx.store.raw(row.message_id)
    if raw is None:
        raise not_found(f"message {row.id} was deleted")
    await release_message(
        ctx.runtime, row.envelope_from, [address], raw, request.headers.get("Authorization")
    )
    return web.Response(status=200)
