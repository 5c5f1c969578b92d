"""The sandbox's own endpoints: journey, queue, chaos, DNS, domains, the session log, wait."""

from __future__ import annotations

import asyncio
import imaplib
import poplib
from collections.abc import Callable
from typing import Any

import aiohttp

from sandbox.testing import AsyncSandbox
from tests.http.conftest import message, submit


async def test_ready_line_and_endpoints_name_the_http_listener(box: AsyncSandbox) -> None:
    ready = box._ready().ready()
    assert ready["http"][1] > 0
    assert box.http_url == f"http://{ready['http'][0]}:{ready['http'][1]}"


async def test_journey_of_a_relayed_copy(box: AsyncSandbox, client: aiohttp.ClientSession) -> None:
    await submit(box, "ann@alpha.test", ["larry@beta.test"], message("Trip"))
    mail = await box.wait_for(to="larry@beta.test")
    async with client.get(f"/api/v1/message/{mail.id}/journey") as r:
        assert r.status == 200
        body = await r.json()
    assert body["id"] == mail.id
    steps = [hop["step"] for hop in body["journey"]]
    assert steps[0] == "submitted"
    assert all({"at", "step", "outcome"} <= hop.keys() for hop in body["journey"])
    assert len(steps) >= 3
    async with client.get("/api/v1/message/latest/journey") as r:
        assert (await r.json())["id"] == mail.id


async def test_auth_verdicts_in_the_message_and_the_journey(
    box: AsyncSandbox, client: aiohttp.ClientSession
) -> None:
    """The receiving MX's verdicts: ``Auth`` beside Mailpit's fields, ``auth`` in the
    journey; the sender's Sent copy never met an MX, so it has none."""
    await submit(box, "ann@alpha.test", ["larry@beta.test"], message("Checked"))
    mail = await box.wait_for(to="larry@beta.test", subject="Checked")
    async with client.get(f"/api/v1/message/{mail.id}") as r:
        auth = (await r.json())["Auth"]
    assert mail.auth is not None
    assert auth == mail.auth.as_json()
    assert (auth["spf"], auth["dkim"], auth["dmarc"]) == ("pass", "pass", "pass")
    assert any(c["method"] == "dkim" and c["result"] == "pass" for c in auth["results"])
    async with client.get(f"/api/v1/message/{mail.id}/journey") as r:
        assert (await r.json())["auth"] == auth
    async with client.get("/api/v1/messages") as r:
        listed = (await r.json())["messages"]
    (sent,) = [m["ID"] for m in listed if m["Subject"] == "Checked" and m["ID"] != str(mail.id)]
    async with client.get(f"/api/v1/message/{sent}") as r:
        assert (await r.json())["Auth"] is None


async def test_journey_errors(client: aiohttp.ClientSession) -> None:
    async with client.get("/api/v1/message/999/journey") as r:
        assert r.status == 404
        assert "999" in (await r.json())["Error"]
    async with client.get("/api/v1/message/abc/journey") as r:
        assert r.status == 400
    async with client.get("/api/v1/message/latest/journey") as r:
        assert r.status == 404


async def test_queue_lists_a_deferred_delivery_and_retry_delivers_it(
    box: AsyncSandbox, client: aiohttp.ClientSession
) -> None:
    async with client.put("/api/v1/chaos/beta.test", json={"mode": "tempfail"}) as r:
        assert r.status == 200
        assert (await r.json())["mx"]["mode"] == "tempfail"
    await submit(box, "ann@alpha.test", ["larry@beta.test"], message("Later"))
    deliveries: list[dict[str, object]] = []
    for _ in range(200):
        async with client.get("/api/v1/queue") as r:
            deliveries = (await r.json())["deliveries"]
        if deliveries and deliveries[0]["state"] == "deferred":
            break
        await asyncio.sleep(0.02)
    assert deliveries[0]["domain"] == "beta.test"
    assert deliveries[0]["recipients"] == ["larry@beta.test"]
    async with client.delete("/api/v1/chaos/beta.test") as r:
        assert (await r.json())["active"] is False
    async with client.post("/api/v1/queue/retry") as r:
        assert r.status == 200
        assert (await r.json())["retried"] >= 0
    mail = await box.wait_for(to="larry@beta.test", timeout=10)
    assert mail.subject == "Later"


async def test_chaos_every_mode_and_bad_input(client: aiohttp.ClientSession) -> None:
    bodies = [
        {"mode": "reject", "stage": "mail", "code": 554},
        {"mode": "tempfail", "code": 452},
        {"mode": "greylist", "seconds": 5},
        {"mode": "delay", "ms": 300},
        {"mode": "disconnect", "stage": "data"},
        {"mode": "ratelimit", "per_minute": 5},
        {"mode": "reject", "probability": 0.3},
        {"mode": "dns-servfail"},
        {"mode": "dns-timeout"},
        {"mode": "dns-nxdomain"},
        {"mode": "dns-delay", "ms": 50},
    ]
    for body in bodies:
        async with client.put("/api/v1/chaos/gamma.test", json=body) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["active"] is True
    async with client.get("/api/v1/chaos") as r:
        listed = {d["domain"]: d for d in (await r.json())["domains"]}
    assert listed["gamma.test"]["dns"]["delay_ms"] == 50
    assert listed["gamma.test"]["mx"]["mode"] == "reject"
    assert listed["alpha.test"]["active"] is False
    async with client.put("/api/v1/chaos/gamma.test", json={"mode": "off"}) as r:
        assert (await r.json())["active"] is False
    for body, status in (
        ({"mode": "explode"}, 400),
        ({}, 400),
        ({"mode": "reject", "code": 250}, 400),
        ({"mode": "delay"}, 400),
        ({"mode": "greylist", "seconds": "soon"}, 400),
    ):
        async with client.put("/api/v1/chaos/gamma.test", json=body) as r:
            assert r.status == status
            assert (await r.json())["Error"]
    async with client.put("/api/v1/chaos/gamma.test", data=b"{not json") as r:
        assert r.status == 400
    async with client.put("/api/v1/chaos/example.com", json={"mode": "off"}) as r:
        assert r.status == 404
        assert "not a sandbox domain" in (await r.json())["Error"]
    async with client.delete("/api/v1/chaos/example.com") as r:
        assert r.status == 404


async def test_dns_lookup_and_log(client: aiohttp.ClientSession) -> None:
    async with client.get("/api/v1/dns/lookup", params={"name": "beta.test", "type": "MX"}) as r:
        assert r.status == 200
        answer = await r.json()
    assert answer == {
        "name": "beta.test",
        "type": "MX",
        "rcode": "NOERROR",
        "answers": ["10 mx.beta.test."],
    }
    async with client.get("/api/v1/dns/lookup", params={"name": "nope.beta.test"}) as r:
        assert (await r.json())["rcode"] == "NXDOMAIN"
    queries: list[dict[str, object]] = []
    for _ in range(100):  # the journal is written with the next commit
        async with client.get("/api/v1/dns/log", params={"limit": "5"}) as r:
            queries = (await r.json())["queries"]
        if queries:
            break
        await asyncio.sleep(0.02)
    assert queries and queries[0]["qname"] in ("nope.beta.test.", "beta.test.")
    assert len(queries) <= 5
    for params in ({"name": "x", "type": "BOGUS"}, {}, {"name": "a..b"}):
        async with client.get("/api/v1/dns/lookup", params=params) as r:
            assert r.status == 400
    for limit in ("0", "lots", "100000"):
        async with client.get("/api/v1/dns/log", params={"limit": limit}) as r:
            assert r.status == 400


async def test_domains_mailboxes_and_folders_with_counts(
    box: AsyncSandbox, client: aiohttp.ClientSession
) -> None:
    await submit(box, "ann@alpha.test", ["larry@beta.test", "ceo@realcompany.com"], message("T"))
    await box.wait_for(to="larry@beta.test")
    async with client.get("/api/v1/domains") as r:
        domains = {d["domain"]: d for d in (await r.json())["domains"]}
    assert {"alpha.test", "beta.test", "gamma.test", "realcompany.com"} <= domains.keys()
    assert domains["realcompany.com"]["fake"] is False
    beta = domains["beta.test"]
    assert beta["total"] == 1 and beta["unread"] == 1
    larry = beta["mailboxes"][0]
    assert larry["address"] == "larry@beta.test"
    folders = {f["name"]: f for f in larry["folders"]}
    assert folders["INBOX"] == {"name": "INBOX", "total": 1, "unread": 1}
    assert domains["gamma.test"]["mailboxes"] == []


async def test_smtp_sessions(box: AsyncSandbox, client: aiohttp.ClientSession) -> None:
    await submit(box, "ann@alpha.test", ["larry@beta.test"], message("S"))
    await box.wait_for(to="larry@beta.test")
    sessions: list[dict[str, object]] = []
    for _ in range(100):  # the journal is written with the next commit
        async with client.get("/api/v1/smtp/sessions", params={"limit": "10"}) as r:
            sessions = (await r.json())["sessions"]
        if any(s["server"] == "submission" for s in sessions):
            break
        await asyncio.sleep(0.02)
    submission = next(s for s in sessions if s["server"] == "submission")
    assert submission["messages"] == 1
    assert any("mail from" in str(line).lower() for line in submission["transcript"])  # type: ignore[union-attr]


async def _sessions_until(
    client: aiohttp.ClientSession, protocol: str, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """The session log once ``done`` holds (the journal is written with the next commit)."""
    sessions: list[dict[str, Any]] = []
    for _ in range(250):
        async with client.get("/api/v1/sessions", params={"protocol": protocol}) as r:
            assert r.status == 200
            sessions = (await r.json())["sessions"]
        if done(sessions):
            return sessions
        await asyncio.sleep(0.02)
    raise AssertionError(f"the {protocol} session log never got there: {sessions}")


async def test_imap_sessions_are_logged_open_then_closed(
    box: AsyncSandbox, client: aiohttp.ClientSession
) -> None:
    """Login, SELECT and IDLE show while the connection lasts; the close ends the entry."""
    imap = await asyncio.to_thread(imaplib.IMAP4, *box.imap_address)
    try:
        await asyncio.to_thread(imap.login, "larry@beta.test", "x")
        await asyncio.to_thread(imap.select, "INBOX")
        tag = imap._new_tag().decode()  # imaplib has no IDLE: the raw command and DONE
        await asyncio.to_thread(imap.send, f"{tag} IDLE\r\n".encode())
        assert (await asyncio.to_thread(imap.readline)).startswith(b"+")
        idling = await _sessions_until(client, "imap", lambda s: bool(s) and s[0]["idling"])
        entry = idling[0]
        assert entry["protocol"] == "imap" and entry["open"] is True
        assert (entry["user"], entry["folder"], entry["server"]) == (
            "larry@beta.test",
            "INBOX",
            "imap",
        )
        assert [step.split(" ", 1)[1] for step in entry["steps"]] == [
            "connected",
            "logged in as larry@beta.test",
            "selected INBOX",
            "IDLE started",
        ]
        await asyncio.to_thread(imap.send, b"DONE\r\n")
        assert tag.encode() in await asyncio.to_thread(imap.readline)
    finally:
        await asyncio.to_thread(imap.logout)
    closed = await _sessions_until(client, "imap", lambda s: not s[0]["open"])
    assert closed[0]["session_id"] == entry["session_id"]
    assert closed[0]["steps"][-2:][0].endswith("IDLE done")
    assert closed[0]["steps"][-1].endswith("disconnected")


async def test_pop3_sessions_are_logged_and_every_protocol_listed(
    box: AsyncSandbox, client: aiohttp.ClientSession
) -> None:
    await submit(box, "ann@alpha.test", ["larry@beta.test"], message("P"))
    await box.wait_for(to="larry@beta.test")
    pop = await asyncio.to_thread(poplib.POP3, *box.pop3_address)
    await asyncio.to_thread(pop.user, "larry@beta.test")
    await asyncio.to_thread(pop.pass_, "x")
    logged_in = await _sessions_until(client, "pop3", lambda s: bool(s) and bool(s[0]["user"]))
    assert (logged_in[0]["user"], logged_in[0]["open"]) == ("larry@beta.test", True)
    await asyncio.to_thread(pop.quit)
    closed = await _sessions_until(client, "pop3", lambda s: not s[0]["open"])
    assert closed[0]["steps"][-1].endswith("disconnected")
    every = await _sessions_until(
        client, "", lambda s: {"smtp", "pop3"} <= {e["protocol"] for e in s}
    )
    submission = next(e for e in every if e["server"] == "submission")
    assert submission["open"] is False and submission["messages"] == 1
    async with client.get("/api/v1/sessions", params={"protocol": "ftp"}) as r:
        assert r.status == 400
        assert "imap" in (await r.json())["Error"]


async def test_wait_returns_a_match_already_stored(
    box: AsyncSandbox, client: aiohttp.ClientSession
) -> None:
    await submit(box, "ann@alpha.test", ["larry@beta.test"], message("Already"))
    stored = await box.wait_for(to="larry@beta.test")
    async with client.get("/api/v1/wait", params={"query": "subject:Already to:larry"}) as r:
        assert r.status == 200
        found = await r.json()
    assert found["ID"] == str(stored.id)
    assert found["Subject"] == "Already"


async def test_wait_returns_a_match_as_it_arrives(
    box: AsyncSandbox, client: aiohttp.ClientSession
) -> None:
    await submit(box, "ann@alpha.test", ["larry@beta.test"], message("Old one"))
    await box.wait_for(to="larry@beta.test")
    waiting = asyncio.ensure_future(
        client.get(
            "/api/v1/wait", params={"query": "to:larry@beta.test", "new": "1", "timeout": "10"}
        )
    )
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await submit(box, "ann@alpha.test", ["larry@beta.test"], message("Fresh"))
    async with await waiting as r:
        assert r.status == 200
        assert (await r.json())["Subject"] == "Fresh"


async def test_wait_times_out_with_408(client: aiohttp.ClientSession) -> None:
    async with client.get("/api/v1/wait", params={"query": "subject:never", "timeout": "0.2"}) as r:
        assert r.status == 408
        assert "within 0.2s" in (await r.json())["Error"]
    for params in (
        {"timeout": "-1"},
        {"timeout": "soon"},
        {"timeout": "9999"},
        {"query": "larger:huge"},
    ):
        async with client.get("/api/v1/wait", params=params) as r:
            assert r.status == 400
            assert (await r.json())["Error"]


async def test_openapi_describes_every_route_and_no_other(
    box: AsyncSandbox, client: aiohttp.ClientSession
) -> None:
    from sandbox.http import make_app, openapi

    async with client.get("/api/v1/openapi.json") as r:
        doc = await r.json()
    assert doc["openapi"].startswith("3.")
    described = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert described == set(openapi.routes())
    served = set()
    app = make_app(box.runtime)  # the same factory the listener serves
    for route in app.router.routes():
        if route.method in ("HEAD", "OPTIONS"):
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter", "")
        if path in ("", "/") or path.startswith("/webmail/"):
            continue  # the webmail's page, static files and its own JSON: not the API
        served.add(
            (
                route.method,
                path.replace("{id}", "{ID}")
                .replace("{part}", "{PartID}")
                .replace("{tag}", "{Tag}"),
            )
        )
    assert served == described
