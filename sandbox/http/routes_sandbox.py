"""What none of Mailpit, MailHog and the rest has, under the same ``/api/v1/`` prefix:
the journey, the relay queue, chaos per domain, the DNS log and lookups, the mailbox
tree, the SMTP session log and a server-side ``wait``. Field names are the sandbox's own
lowercase ones, as ``mail-sandbox … --json`` prints them.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
from aiohttp import web

from sandbox.chaos import MX_MODES, STAGES, ChaosError, DomainChaos, MxFault, dns_fault
from sandbox.events import EntriesCopied, MessagesMoved, MessageStored
from sandbox.http import openapi, serialize
from sandbox.http.context import api, int_param, json_body, json_response, unavailable
from sandbox.http.errors import ApiError, bad_request, not_found
from sandbox.http.search import SearchError, parse_search, zone
from sandbox.mime import iso_utc
from sandbox.store import http_views as views

DNS_MODES = ("dns-servfail", "dns-timeout", "dns-nxdomain", "dns-delay")
DEFAULT_WAIT = 30.0
MAX_WAIT = 600.0
# A change made by another process reaches this one's bus through the change feed; until
# then (or if it lags) the store is looked at this often anyway.
WAIT_RECHECK = 0.5
DNS_TIMEOUT = 2.0

routes = web.RouteTableDef()


@routes.get("/api/v1/message/{id}/journey")
async def journey(request: web.Request) -> web.Response:
    ctx = api(request)
    row = await ctx.row(request.match_info["id"])
    record = await ctx.store.get_message(row.id)
    hops = await ctx.store.journey_of(record) if record is not None else ()
    raw = await ctx.store.raw(row.message_id)
    return json_response(
        {
            "id": row.id,
            "journey": [hop.as_json() for hop in hops],
            "auth": serialize.auth_json(raw) if raw is not None else None,
        }
    )


@routes.get("/api/v1/queue")
async def queue(request: web.Request) -> web.Response:
    pending = await api(request).store.pending_deliveries()
    return json_response({"deliveries": [d.as_json() for d in pending]})


@routes.post("/api/v1/queue/retry")
async def queue_retry(request: web.Request) -> web.Response:
    runtime = api(request).runtime
    retried = await runtime.store.retry_now()
    with contextlib.suppress(RuntimeError):  # no relay yet: it reads the queue on start
        runtime.relay.wake()
    return json_response({"retried": retried})


def _chaos_json(domain: str, chaos: DomainChaos) -> dict[str, Any]:
    return {
        "domain": domain,
        "active": chaos.active,
        "description": chaos.describe(),
        **chaos.to_json(),
    }


@routes.get("/api/v1/chaos")
async def chaos_list(request: web.Request) -> web.Response:
    runtime = api(request).runtime
    current = runtime.chaos.settings()
    return json_response(
        {
            "domains": [
                _chaos_json(d.name, current.get(d.name, DomainChaos()))
                for d in runtime.config.domains
            ]
        }
    )


def _fake_domain(request: web.Request) -> str:
    runtime = api(request).runtime
    domain = request.match_info["domain"].lower()
    if not runtime.config.is_fake_domain(domain):
        names = ", ".join(sorted(runtime.config.domain_names()))
        raise not_found(f"{domain} is not a sandbox domain (these are: {names})")
    return domain


def _number(body: dict[str, Any], key: str, default: Any, kind: type) -> Any:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"{key} must be a number, got {value!r}")
    return kind(value)


def chaos_from_body(current: DomainChaos, body: dict[str, Any]) -> DomainChaos:
    """The same modes and options as ``mail-sandbox chaos`` (``per_minute`` for
    ``--per-minute``)."""
    mode = body.get("mode")
    if not isinstance(mode, str):
        modes = ", ".join((*MX_MODES, *DNS_MODES, "off"))
        raise bad_request(f'the body needs "mode": one of {modes}')
    mode = mode.lower()
    code = body.get("code")
    if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
        raise bad_request(f"code must be a whole number, got {code!r}")
    stage = body.get("stage", "rcpt")
    message = body.get("message")
    if not isinstance(stage, str) or (message is not None and not isinstance(message, str)):
        raise bad_request("stage and message must be text")
    ms = _number(body, "ms", 0, int)
    try:
        if mode == "off":
            return DomainChaos()
        if mode in DNS_MODES:
            return DomainChaos(current.mx, dns_fault(mode, ms))
        if mode in MX_MODES:
            if mode == "delay" and ms <= 0:
                raise ChaosError('delay needs "ms" above 0')
            fault = MxFault(
                mode,
                code,
                stage,
                _number(body, "seconds", 1.0, float),
                ms,
                _number(body, "per_minute", 10, int),
                _number(body, "probability", 1.0, float),
                message,
            )
            return DomainChaos(fault, current.dns)
    except ChaosError as exc:
        raise bad_request(str(exc)) from None
    modes = ", ".join((*MX_MODES, *DNS_MODES, "off"))
    raise bad_request(f"unknown mode {mode!r}; use one of {modes} (stages: {', '.join(STAGES)})")


@routes.put("/api/v1/chaos/{domain}")
async def chaos_set(request: web.Request) -> web.Response:
    domain = _fake_domain(request)
    runtime = api(request).runtime
    current = runtime.chaos.settings().get(domain, DomainChaos())
    updated = chaos_from_body(current, await json_body(request))
    await runtime.set_chaos(domain, updated)
    return json_response(_chaos_json(domain, updated))


@routes.delete("/api/v1/chaos/{domain}")
async def chaos_off(request: web.Request) -> web.Response:
    domain = _fake_domain(request)
    await api(request).runtime.set_chaos(domain, DomainChaos())
    return json_response(_chaos_json(domain, DomainChaos()))


def _journal_entry(entry: dict[str, Any]) -> dict[str, Any]:
    return {**entry, "at": iso_utc(float(entry["at"]))}


@routes.get("/api/v1/dns/log")
async def dns_log(request: web.Request) -> web.Response:
    limit = int_param(request, "limit", 100, low=1, high=10_000)
    entries = await views.dns_log(api(request).store, limit)
    return json_response({"queries": [_journal_entry(e) for e in entries]})


@routes.get("/api/v1/dns/lookup")
async def dns_lookup(request: web.Request) -> web.Response:
    name = request.query.get("name", "").strip()
    rdtype = request.query.get("type", "A").strip() or "A"
    if not name:
        raise bad_request("say which name to look up: ?name=beta.test&type=MX")
    try:
        qtype = dns.rdatatype.from_text(rdtype)
        query = dns.message.make_query(name, qtype)
    except dns.rdatatype.UnknownRdatatype:
        raise bad_request(f"{rdtype!r} is not a DNS record type (try MX, A, TXT, SRV)") from None
    except dns.exception.DNSException as exc:
        raise bad_request(f"{name!r} is not a DNS name: {exc}") from None
    runtime = api(request).runtime
    try:
        host, port = runtime.dns_server.address
    except RuntimeError:
        raise unavailable("the DNS stub") from None
    try:
        response = await dns.asyncquery.udp(query, host, port=port, timeout=DNS_TIMEOUT)
    except dns.exception.Timeout:
        raise ApiError(
            504, f"the DNS stub gave no answer within {DNS_TIMEOUT:g}s (a timeout fault?)"
        ) from None
    return json_response(
        {
            "name": name,
            "type": dns.rdatatype.to_text(qtype),
            "rcode": dns.rcode.to_text(response.rcode()),
            "answers": [rdata.to_text() for rrset in response.answer for rdata in rrset],
        }
    )


@routes.get("/api/v1/domains")
async def domains(request: web.Request) -> web.Response:
    runtime = api(request).runtime
    tree: dict[str, dict[str, Any]] = {
        d.name: {"domain": d.name, "fake": True, "total": 0, "unread": 0, "mailboxes": []}
        for d in runtime.config.domains
    }
    mailboxes: dict[str, dict[str, Any]] = {}
    for domain, mailbox, folder, total, unread in await views.folder_counts(runtime.store):
        node = tree.setdefault(
            domain, {"domain": domain, "fake": False, "total": 0, "unread": 0, "mailboxes": []}
        )
        box = mailboxes.get(mailbox)
        if box is None:
            box = mailboxes[mailbox] = {"address": mailbox, "total": 0, "unread": 0, "folders": []}
            node["mailboxes"].append(box)
        box["folders"].append({"name": folder, "total": total, "unread": unread})
        for counted in (box, node):
            counted["total"] += total
            counted["unread"] += unread
    return json_response({"domains": list(tree.values())})


@routes.get("/api/v1/smtp/sessions")
async def smtp_sessions(request: web.Request) -> web.Response:
    limit = int_param(request, "limit", 100, low=1, high=10_000)
    entries = await views.smtp_sessions(api(request).store, limit)
    sessions = [
        {**_journal_entry(e), "started_at": iso_utc(float(e.get("started_at") or e["at"]))}
        for e in entries
    ]
    return json_response({"sessions": sessions})


@routes.get("/api/v1/sessions")
async def sessions(request: web.Request) -> web.Response:
    """The session log of every protocol (or ``protocol=imap|pop3|smtp``), newest first;
    ``open`` is true while the connection lasts."""
    limit = int_param(request, "limit", 100, low=1, high=10_000)
    wanted = request.query.get("protocol", "")
    known = tuple(views.SESSION_KINDS)
    if wanted and wanted not in known:
        raise bad_request(f"protocol must be one of {', '.join(known)} (or left out for all)")
    entries = await views.sessions(api(request).store, (wanted,) if wanted else known, limit)
    return json_response({"sessions": [_session(kind, e) for kind, e in entries]})


def _session(kind: str, entry: dict[str, Any]) -> dict[str, Any]:
    protocol = kind.partition(".")[0]
    is_open = bool(entry.get("open")) if protocol != "smtp" else kind == "smtp.progress"
    return {
        **_journal_entry(entry),
        "protocol": protocol,
        "open": is_open,
        "started_at": iso_utc(float(entry.get("started_at") or entry["at"])),
    }


def _wait_timeout(request: web.Request) -> float:
    raw = request.query.get("timeout", "")
    if not raw:
        return DEFAULT_WAIT
    try:
        value = float(raw.removesuffix("s"))
    except ValueError:
        raise bad_request(f"timeout must be seconds, like 10 or 2.5, got {raw!r}") from None
    if not 0 < value <= MAX_WAIT:
        raise bad_request(f"timeout must be above 0 and at most {MAX_WAIT:g} seconds")
    return value


@routes.get("/api/v1/wait")
async def wait(request: web.Request) -> web.Response:
    """The first matching message as soon as it is stored (one already stored counts
    unless ``new=1``); 408 when none comes within ``timeout`` seconds."""
    ctx = api(request)
    query = request.query.get("query", "")
    try:
        flt = parse_search(query, zone(request.query.get("tz")))
    except SearchError as exc:
        raise bad_request(str(exc)) from None
    seconds = _wait_timeout(request)
    new = request.query.get("new", "") in ("1", "true", "yes")
    # Subscribe before looking, so a message stored in between is seen either way.
    subscription = ctx.runtime.bus.subscribe(maxsize=1000)
    try:
        after = await ctx.store.last_id()
        found = None if new else await views.latest_id(ctx.store, flt)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while found is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ApiError(
                    408,
                    f"no message matching {query!r} arrived within {seconds:g}s;"
                    " GET /api/v1/messages lists what did, /api/v1/queue what the relay"
                    " is still working on",
                )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, WAIT_RECHECK)):
                    while not isinstance(
                        await subscription.get(), MessageStored | EntriesCopied | MessagesMoved
                    ):
                        pass
            found = await views.first_after(ctx.store, flt, after)
    finally:
        subscription.close()
    row = await views.summary(ctx.store, found)
    if row is None:  # deleted in the blink between
        raise not_found(f"the matching message {found} was deleted before it could be read")
    return json_response((await ctx.summaries([row]))[0])


@routes.get("/api/v1/openapi.json")
async def openapi_document(request: web.Request) -> web.Response:
    return json_response(openapi.document())
