"""Mailpit's v1 endpoints and MailHog's v2 ones with aiohttp's client, every error
status included, against a sandbox on port 0."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from sandbox.config import Account, HttpConfig
from sandbox.testing import AsyncSandbox, sandbox_config
from tests.http.conftest import message, submit

ATTACHED = (
    b"From: Ann <ann@alpha.test>\r\nTo: Larry <larry@beta.test>\r\nCc: moe@gamma.test\r\n"
    b"Reply-To: desk@alpha.test\r\nSubject: Invoice 7\r\nMessage-ID: <inv7@alpha.test>\r\n"
    b"X-Tags: billing\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: multipart/related; boundary=r\r\n\r\n--r\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>Total <img src=cid:logo></p>\r\n"
    b"--r\r\nContent-Type: image/png\r\nContent-ID: <logo>\r\nContent-Transfer-Encoding: base64"
    b"\r\n\r\niVBORw0K\r\n--r--\r\n--b\r\nContent-Type: text/plain\r\n\r\nTotal: 7 EUR\r\n"
    b'--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="i.pdf"'
    b"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n"
)


async def _json(response: aiohttp.ClientResponse) -> Any:
    assert response.content_type == "application/json", await response.text()
    return await response.json()


async def stored(box: AsyncSandbox, raw: bytes = ATTACHED, to: str = "larry@beta.test") -> int:
    await submit(box, "ann@alpha.test", [to], raw)
    return (await box.wait_for(to=to)).id


async def test_list_newest_first_with_counts(
    box: AsyncSandbox, client: aiohttp.ClientSession
) -> None:
    for n in range(3):
        await submit(box, "ann@alpha.test", ["larry@beta.test"], message(f"N{n}"))
        await box.wait_for(to="larry@beta.test", subject=f"N{n}")
    async with client.get("/api/v1/messages", params={"limit": "2"}) as r:
        page = await _json(r)
    assert page["total"] == 6  # three Sent copies, three INBOX copies
    assert page["messages_count"] == 6
    assert page["start"] == 0
    assert len(page["messages"]) == 2
    ids = [int(m["ID"]) for m in page["messages"]]
    assert ids == sorted(ids, reverse=True)
    async with client.get("/api/v1/messages", params={"start": "5", "limit": "50"}) as r:
        rest = await _json(r)
    assert len(rest["messages"]) == 1 and rest["start"] == 5
    for params in ({"limit": "-1"}, {"start": "x"}, {"limit": "99999999"}):
        async with client.get("/api/v1/messages", params=params) as r:
            assert r.status == 400
            assert (await _json(r))["Error"]


async def test_message_shapes_headers_raw_parts_and_views(
    box: AsyncSandbox, client: aiohttp.ClientSession
) -> None:
    entry = await stored(box)
    async with client.get(f"/api/v1/message/{entry}") as r:
        full = await _json(r)
    assert full["ID"] == str(entry)
    assert full["MessageID"] == "inv7@alpha.test"
    assert full["To"] == [{"Name": "Larry", "Address": "larry@beta.test"}]
    assert full["Cc"] == [{"Name": "", "Address": "moe@gamma.test"}]
    assert full["ReplyTo"] == [{"Name": "", "Address": "desk@alpha.test"}]
    assert full["Text"] == "Total: 7 EUR"
    assert "<img src=cid:logo>" in full["HTML"]
    assert [a["FileName"] for a in full["Attachments"]] == ["i.pdf"]
    assert [i["ContentID"] for i in full["Inline"]] == ["logo"]
    assert full["Tags"] == ["billing"]
    async with client.get("/api/v1/message/latest") as r:
        assert (await _json(r))["ID"] == str(entry)
    async with client.get(f"/api/v1/message/{entry}/headers") as r:
        headers = await _json(r)
    assert headers["Subject"] == ["Invoice 7"]
    assert headers["Message-Id"] == ["<inv7@alpha.test>"]
    assert list(headers) == sorted(headers)
    async with client.get(f"/api/v1/message/{entry}/raw") as r:
        raw = await r.read()
    # The journey adds header fields (trace, Date:, signatures): the original body stays.
    assert raw.endswith(ATTACHED.split(b"\r\n\r\n", 1)[1])
    pdf = full["Attachments"][0]["PartID"]
    async with client.get(f"/api/v1/message/{entry}/part/{pdf}") as r:
        assert r.content_type == "application/pdf"
        assert await r.read() == base64.b64decode("JVBERi0=")
    async with client.get(f"/api/v1/message/{entry}/part/9.9") as r:
        assert r.status == 404
    async with client.get(f"/view/{entry}.html") as r:
        assert r.content_type == "text/html"
        assert "sandbox" in r.headers["Content-Security-Policy"]
        assert "<img src=cid:logo>" in await r.text()
    async with client.get(f"/view/{entry}.txt") as r:
        assert await r.text() == "Total: 7 EUR"
    plain = await stored(box, message("No html"), "moe@gamma.test")
    async with client.get(f"/view/{plain}.html") as r:
        assert r.status == 404
        assert "no HTML part" in (await _json(r))["Error"]


async def test_unknown_and_bad_ids(client: aiohttp.ClientSession) -> None:
    for path in (
        "/api/v1/message/42",
        "/api/v1/message/42/raw",
        "/api/v1/message/42/headers",
        "/view/42.html",
        "/api/v1/message/latest",
    ):
        async with client.get(path) as r:
            assert r.status == 404, path
            assert (await _json(r))["Error"]
    for path in ("/api/v1/message/abc", "/api/v1/message/1e3/raw"):
        async with client.get(path) as r:
            assert r.status == 400


async def test_reading_marks_read_and_put_messages_sets_it(
    box: AsyncSandbox, client: aiohttp.ClientSession
) -> None:
    entry = await stored(box)
    async with client.get("/api/v1/messages") as r:
        assert (await _json(r))["unread"] == 1  # the Sent copy is read already
    async with client.get(f"/api/v1/message/{entry}") as r:
        assert r.status == 200
    async with client.get("/api/v1/search", params={"query": "is:unread"}) as r:
        assert (await _json(r))["messages_count"] == 0
    async with client.put("/api/v1/messages", json={"IDs": [str(entry)], "Read": False}) as r:
        assert r.status == 200 and await r.text() == "ok"
    async with client.get("/api/v1/search", params={"query": "is:unread"}) as r:
        assert [m["ID"] for m in (await _json(r))["messages"]] == [str(entry)]
    async with client.put(
        "/api/v1/messages", json={"Search": "subject:invoice", "Read": True}
    ) as r:
        assert r.status == 200
    async with client.get("/api/v1/messages") as r:
        assert (await _json(r))["unread"] == 0
    async with client.put("/api/v1/messages", json={"Read": False}) as r:  # all
        assert r.status == 200
    async with client.get("/api/v1/messages") as r:
        assert (await _json(r))["unread"] == 2
    for body in ({"IDs": "x1"}, {"Read": "yes"}, {"IDs": {"a": 1}}):
        async with client.put("/api/v1/messages", json=body) as r:
            assert r.status == 400
    async with client.put("/api/v1/messages", data=b"[1, 2") as r:
        assert r.status == 400


async def test_search_syntax(box: AsyncSandbox, client: aiohttp.ClientSession) -> None:
    invoice = await stored(box)
    other = await stored(box, message("Lunch plans", to="moe@gamma.test"), "moe@gamma.test")

    async def ids(query: str) -> set[int]:
        async with client.get("/api/v1/search", params={"query": query}) as r:
            body = await _json(r)
            assert r.status == 200
            return {int(m["ID"]) for m in body["messages"]}

    # Each message has two copies: the sender's Sent copy and the recipient's INBOX one.
    def only(found: set[int], wanted: int, unwanted: int) -> bool:
        return wanted in found and unwanted not in found

    assert only(await ids("to:larry subject:invoice"), invoice, other)
    assert only(await ids("has:attachment"), invoice, other)
    assert only(await ids('subject:"lunch plans" to:moe'), other, invoice)
    assert only(await ids("-subject:lunch"), invoice, other)
    assert only(await ids("tag:billing"), invoice, other)
    assert only(await ids("message-id:<inv7@alpha.test>"), invoice, other)
    assert only(await ids("cc:moe@gamma.test"), invoice, other)
    # Sizes include what the journey added (Received:, DKIM-Signature:, the verdicts).
    async with client.get("/api/v1/messages") as r:  # a summary does not mark it read
        size_of = {int(m["ID"]): m["Size"] for m in (await _json(r))["messages"]}
    sizes = [size_of[invoice], size_of[other]]
    assert sizes[0] > sizes[1], sizes  # the invoice carries two attachments
    between = (sizes[0] + sizes[1]) // 2
    assert only(await ids(f"larger:{between}"), invoice, other)
    assert only(await ids(f"smaller:{between}"), other, invoice)
    assert only(await ids('"Total: 7 EUR"'), invoice, other)
    assert only(await ids("is:unread"), invoice, invoice - 1)  # a Sent copy is read
    assert await ids("after:2000-01-01 before:2000-01-02") == set()
    assert await ids("from:nobody@nowhere.test") == set()
    async with client.get(
        "/api/v1/search", params={"query": "after:2000-01-01", "tz": "Asia/Tokyo"}
    ) as r:
        assert (await _json(r))["messages_count"] == 2 * 2
    async with client.get(
        "/api/v1/search", params={"query": "after:2000-01-01", "tz": "Nowhere/X"}
    ) as r:
        assert r.status == 400
    for bad in ("is:starred", "larger:big", "after:yesterday", "has:"):
        async with client.get("/api/v1/search", params={"query": bad}) as r:
            assert r.status == 400
            assert (await _json(r))["Error"]
    async with client.get("/api/v1/search") as r:
        assert r.status == 400


async def test_delete_by_ids_by_search_and_all(
    box: AsyncSandbox, client: aiohttp.ClientSession
) -> None:
    entry = await stored(box)
    other = await stored(box, message("Keep", to="moe@gamma.test"), "moe@gamma.test")
    async with client.delete("/api/v1/messages", json={"IDs": [str(entry)]}) as r:
        assert await r.text() == "ok"
    async with client.get(f"/api/v1/message/{entry}") as r:
        assert r.status == 404
    async with client.delete("/api/v1/search", params={"query": "subject:keep to:moe"}) as r:
        assert r.status == 200
    async with client.get(f"/api/v1/message/{other}") as r:
        assert r.status == 404
    async with client.delete("/api/v1/search") as r:
        assert r.status == 400
    async with client.delete("/api/v1/messages") as r:
        assert r.status == 200
    async with client.get("/api/v1/messages") as r:
        assert (await _json(r))["total"] == 0


async def test_tags_set_list_rename_delete(
    box: AsyncSandbox, client: aiohttp.ClientSession
) -> None:
    entry = await stored(box)
    plus = await stored(box, message("Plus", to="moe+orders@gamma.test"), "moe+orders@gamma.test")
    async with client.get(f"/api/v1/message/{plus}") as r:
        assert (await _json(r))["Tags"] == ["orders"]
    async with client.put(
        "/api/v1/tags", json={"IDs": [str(entry)], "Tags": ["Urgent", "a/b!"]}
    ) as r:
        assert await r.text() == "ok"
    async with client.get("/api/v1/tags") as r:
        assert await _json(r) == ["ab", "billing", "orders", "Urgent"]
    async with client.put("/api/v1/tags/urgent", json={"Name": "later"}) as r:
        assert r.status == 200
    async with client.delete("/api/v1/tags/ab") as r:
        assert r.status == 200
    async with client.get(f"/api/v1/message/{entry}") as r:
        assert (await _json(r))["Tags"] == ["later"]
    async with client.put("/api/v1/tags", json={"IDs": [str(entry)]}) as r:  # no Tags: none
        assert r.status == 200
    async with client.get(f"/api/v1/message/{entry}") as r:
        assert (await _json(r))["Tags"] == []
    for body in ({"Tags": ["x"]}, {"IDs": ["1"], "Tags": "x"}):
        async with client.put("/api/v1/tags", json=body) as r:
            assert r.status == 400
    async with client.put("/api/v1/tags/nope", json={"Name": "x"}) as r:
        assert r.status == 404
    async with client.put("/api/v1/tags/orders", json={"Name": "!!"}) as r:
        assert r.status == 400


async def test_send_travels_the_whole_journey(
    box: AsyncSandbox, client: aiohttp.ClientSession
) -> None:
    body = {
        "From": {"Email": "ann@alpha.test", "Name": "Ann"},
        "To": [{"Email": "larry@beta.test", "Name": "Larry"}],
        "Bcc": [{"Email": "boss@realcompany.com"}],
        "Subject": "Sent over HTTP",
        "Text": "plain",
        "HTML": "<b>bold</b>",
        "Headers": {"X-Campaign": "spring"},
        "Tags": ["api"],
        "Attachments": [
            {
                "Content": base64.b64encode(b"hi").decode(),
                "Filename": "hi.txt",
                "ContentType": "text/plain",
            }
        ],
    }
    async with client.post("/api/v1/send", json=body) as r:
        assert r.status == 200
        sent = await _json(r)
    assert sent["ID"].isdigit()
    delivered = await box.wait_for(to="larry@beta.test", subject="Sent over HTTP")
    assert delivered.headers["X-Campaign"] == "spring"
    steps = [hop.step for hop in delivered.journey]
    assert steps[0] == "submitted" and len(steps) >= 3
    held = await box.wait_for(to="boss@realcompany.com")
    assert held.held
    for bad in (
        {},
        {"From": {"Email": "ann@alpha.test"}},
        {"From": {"Email": "not-an-address"}, "To": [{"Email": "larry@beta.test"}]},
        {**body, "Attachments": [{"Content": "***", "Filename": "x"}]},
        {**body, "Headers": {"X-Bad": "a\r\nBcc: evil@x.test"}},
        {**body, "To": "larry@beta.test"},
    ):
        async with client.post("/api/v1/send", json=bad) as r:
            assert r.status == 400, bad
            assert (await _json(r))["Error"]


async def test_release_resends_inside_the_sandbox(
    box: AsyncSandbox, client: aiohttp.ClientSession
) -> None:
    entry = await stored(box)
    async with client.post(
        f"/api/v1/message/{entry}/release", json={"To": ["moe@gamma.test", "ext@realcompany.com"]}
    ) as r:
        assert await r.text() == "ok"
    copy = await box.wait_for(to="moe@gamma.test", subject="Invoice 7")
    assert copy.text == "Total: 7 EUR"
    assert (await box.wait_for(to="ext@realcompany.com")).held
    for body in ({}, {"To": []}, {"To": ["nobody"]}):
        async with client.post(f"/api/v1/message/{entry}/release", json=body) as r:
            assert r.status == 400
    async with client.post("/api/v1/message/999/release", json={"To": ["a@beta.test"]}) as r:
        assert r.status == 404


async def test_info_webui_and_health(box: AsyncSandbox, client: aiohttp.ClientSession) -> None:
    await stored(box)
    async with client.get("/api/v1/info") as r:
        info = await _json(r)
    assert info["Messages"] == 2 and info["Tags"] == {"billing": 2}
    assert {"Uptime", "Memory", "SMTPAccepted", "MessagesDeleted"} <= info["RuntimeStats"].keys()
    assert info["RuntimeStats"]["SMTPAccepted"] >= 2
    async with client.get("/api/v1/webui") as r:
        webui = await _json(r)
    assert webui["MessageRelay"]["SMTPServer"] == "{}:{}".format(*box.smtp_address)
    for path in ("/livez", "/readyz"):
        async with client.get(path) as r:
            assert r.status == 200


async def test_mailhog_v2_shapes(box: AsyncSandbox, client: aiohttp.ClientSession) -> None:
    entry = await stored(box)
    async with client.get("/api/v2/messages", params={"limit": "1"}) as r:
        page = await _json(r)
    assert page["total"] == 2 and page["count"] == 1 and page["start"] == 0
    item = page["items"][0]
    assert item["ID"] == str(entry)
    assert item["From"] == {"Relays": None, "Mailbox": "ann", "Domain": "alpha.test", "Params": ""}
    assert item["To"][0]["Domain"] == "beta.test"
    assert item["Content"]["Headers"]["Subject"] == ["Invoice 7"]
    assert len(item["MIME"]["Parts"]) == 3
    assert item["Raw"]["Data"].endswith(ATTACHED.split(b"\r\n\r\n", 1)[1].decode())
    async with client.get("/api/v2/search", params={"kind": "to", "query": "larry@beta.test"}) as r:
        assert (await _json(r))["total"] == 2
    async with client.get("/api/v2/search", params={"kind": "containing", "query": "EUR"}) as r:
        assert (await _json(r))["count"] == 2
    async with client.get("/api/v2/search", params={"kind": "body", "query": "x"}) as r:
        assert r.status == 400
    async with client.get("/api/v2/search", params={"kind": "to"}) as r:
        assert r.status == 400
    async with client.delete(f"/api/v1/messages/{entry}") as r:
        assert r.status == 200
    async with client.delete(f"/api/v1/messages/{entry}") as r:
        assert r.status == 404


async def test_errors_are_json_with_the_right_status(client: aiohttp.ClientSession) -> None:
    async with client.get("/api/v1/nothing-here") as r:
        assert r.status == 404
        assert "openapi.json" in (await _json(r))["Error"]
    async with client.post("/api/v1/messages") as r:
        assert r.status == 405
        assert "GET" in r.headers["Allow"]
        assert (await _json(r))["Error"].startswith("POST is not allowed")
    async with client.delete("/api/v1/info") as r:
        assert r.status == 405


async def test_body_larger_than_the_smtp_limit_is_413() -> None:
    config = sandbox_config()
    config = replace(config, smtp=replace(config.smtp, max_message_size=10_000))
    async with AsyncSandbox(config=config) as box, aiohttp.ClientSession(box.http_url) as s:
        big = {
            "From": {"Email": "a@alpha.test"},
            "To": [{"Email": "b@beta.test"}],
            "Text": "x" * 20_000,
        }
        async with s.post("/api/v1/send", json=big) as r:
            assert r.status == 413
            assert "size limit" in (await _json(r))["Error"]
        # Under the body limit, over the SMTP one after encoding: the server's 552 is 413.
        near = {
            **big,
            "Text": "",
            "Attachments": [
                {"Content": base64.b64encode(b"y" * 7_100).decode(), "Filename": "y.bin"}
            ],
        }
        async with s.post("/api/v1/send", json=near) as r:
            assert r.status == 413
        async with s.get("/livez") as r:
            assert r.status == 200  # the server goes on


async def test_host_and_origin_refusals(client: aiohttp.ClientSession, box: AsyncSandbox) -> None:
    for host in ("evil.example", "127.0.0.1.nip.io:8025", "attacker.localhost.evil.com"):
        async with client.get("/api/v1/messages", headers={"Host": host}) as r:
            assert r.status == 403
            assert "DNS rebinding" in (await _json(r))["Error"]
    for host in ("localhost", "127.0.0.1:1", "[::1]:8025", "mail.localhost"):
        async with client.get("/api/v1/messages", headers={"Host": host}) as r:
            assert r.status == 200, host
    for origin in ("http://evil.example", "null", "http://localhost:3000"):
        async with client.get("/api/v1/messages", headers={"Origin": origin}) as r:
            assert r.status == 403
            assert "cors_origins" in (await _json(r))["Error"]
    same = box.http_url
    async with client.get("/api/v1/messages", headers={"Origin": same}) as r:
        assert r.status == 200
        assert "Access-Control-Allow-Origin" not in r.headers  # no permissive CORS


async def test_configured_cors_origin() -> None:
    config = sandbox_config()
    config = replace(config, http=HttpConfig(port=0, cors_origins="http://localhost:3000"))
    async with AsyncSandbox(config=config) as box, aiohttp.ClientSession(box.http_url) as s:
        headers = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "DELETE"}
        async with s.options("/api/v1/messages", headers=headers) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
        async with s.get("/api/v1/messages", headers={"Origin": "http://localhost:3000"}) as r:
            assert r.status == 200
            assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
        async with s.get("/api/v1/messages", headers={"Origin": "http://localhost:4000"}) as r:
            assert r.status == 403


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.mark.parametrize("kind", ["password", "account"])
async def test_credentials(kind: str) -> None:
    config = sandbox_config()
    if kind == "password":
        config = replace(config, http=HttpConfig(port=0, password="s3cret"))
        good = _basic("anyone", "s3cret")
    else:
        # Beyond loopback every request needs credentials; the same rule, forced here
        # with an account and a password as a host beyond loopback would.
        config = replace(
            config,
            http=HttpConfig(port=0, password="other"),
            accounts=(Account("larry@beta.test", "pw"),),
        )
        good = _basic("larry@beta.test", "pw")
    async with AsyncSandbox(config=config) as box, aiohttp.ClientSession(box.http_url) as s:
        async with s.get("/api/v1/messages") as r:
            assert r.status == 401
            assert r.headers["WWW-Authenticate"].startswith("Basic")
            assert "credentials needed" in (await _json(r))["Error"]
        async with s.get("/api/v1/messages", headers=_basic("x", "wrong")) as r:
            assert r.status == 401
        async with s.get("/api/v1/messages", headers={"Authorization": "Basic !!!"}) as r:
            assert r.status == 401
        async with s.get("/api/v1/messages", headers=good) as r:
            assert r.status == 200
        async with s.get("/livez") as r:
            assert r.status == 200


async def test_part_with_a_non_ascii_file_name(
    box: AsyncSandbox, client: aiohttp.ClientSession
) -> None:
    raw = (
        b"From: ann@alpha.test\r\nTo: larry@beta.test\r\nSubject: cv\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
        b"see attached\r\n--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment;"
        b" filename*=UTF-8''r%C3%A9sum%C3%A9.pdf\r\n\r\n%PDF\r\n--b--\r\n"
    )
    entry = await stored(box, raw)
    async with client.get(f"/api/v1/message/{entry}") as r:
        (attached,) = (await _json(r))["Attachments"]
    assert attached["FileName"] == "résumé.pdf"
    async with client.get(f"/api/v1/message/{entry}/part/{attached['PartID']}") as r:
        assert r.status == 200
        assert "filename*=UTF-8''r%C3%A9sum%C3%A9.pdf" in r.headers["Content-Disposition"]
        assert await r.read() == b"%PDF"


async def test_send_and_release_from_an_account_log_in_to_smtp() -> None:
    """With ``[accounts]`` the submission server takes an account's address only after
    SMTP AUTH as it: the API logs in with the request's HTTP basic credentials, and
    without them answers a JSON 403 that says what to send."""
    config = replace(sandbox_config(), accounts=(Account("ann@alpha.test", "right"),))
    send = {"From": {"Email": "ann@alpha.test"}, "To": [{"Email": "larry@beta.test"}],
            "Subject": "As Ann", "Text": "hi"}  # fmt: skip
    async with AsyncSandbox(config=config) as box, aiohttp.ClientSession(box.http_url) as client:
        async with client.post("/api/v1/send", json=send) as r:
            assert r.status == 403
            assert "curl -u ann@alpha.test:PASSWORD" in (await r.json())["Error"]
        wrong = _basic("ann@alpha.test", "nope")
        async with client.post("/api/v1/send", json=send, headers=wrong) as r:
            assert r.status == 403
        ann = _basic("ann@alpha.test", "right")
        async with client.post("/api/v1/send", json=send, headers=ann) as r:
            assert r.status == 200, await r.text()
            sent_id = (await r.json())["ID"]
        await box.wait_for(to="larry@beta.test", subject="As Ann")
        release = {"To": ["moe@gamma.test"]}
        async with client.post(f"/api/v1/message/{sent_id}/release", json=release) as r:
            assert r.status == 403
        async with client.post(
            f"/api/v1/message/{sent_id}/release", json=release, headers=ann
        ) as r:
            assert r.status == 200, await r.text()
        await box.wait_for(to="moe@gamma.test", subject="As Ann")


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
