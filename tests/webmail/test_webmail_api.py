"""The webmail's server side over real sockets: its JSON, its WebSocket, its IMAP session.

Every response is read, so its connection goes back to aiohttp's pool: an unread one
warns when it is collected, which fails whichever test is running then.
"""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from email.message import EmailMessage
from typing import Any

import aiohttp
import pytest

from sandbox.config import Account, load_config
from sandbox.testing import Sandbox
from sandbox.webmail.views import SESSIONS as SESSIONS_KEY
from tests.webmail.conftest import Webmail

BINARY = bytes(range(256)) * 40


def mail(
    to: str = "larry@beta.test",
    subject: str = "Welcome aboard",
    *,
    sender: str = "app@alpha.test",
    html: str | None = None,
    attach: bytes | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"The App <{sender}>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.replace(' ', '.')}@alpha.test>"
    message.set_content("Hello!\nVerify at https://app.test/verify?t=1\n")
    if html is not None:
        message.add_alternative(html, subtype="html")
    if attach is not None:
        message.add_attachment(
            attach, maintype="application", subtype="octet-stream", filename="data.bin"
        )
    return message


def send(webmail: Webmail, message: EmailMessage) -> None:
    with smtplib.SMTP(*webmail.sandbox.smtp_address) as smtp:
        smtp.send_message(message)


class Browser:
    """What the page does, as an HTTP client with a cookie jar."""

    def __init__(self, client: aiohttp.ClientSession, url: str) -> None:
        self.client = client
        self.url = url
        self.csrf = ""

    async def login(self, user: str, password: str = "secret") -> dict[str, Any]:
        response = await self.client.post(
            self.url + "/webmail/api/login", json={"user": user, "password": password}
        )
        await response.read()
        body = await response.json()
        assert response.status == 200, body
        self.csrf = body["csrf"]
        return dict(body)

    async def get(self, path: str, status: int = 200, **params: Any) -> Any:
        response = await self.client.get(self.url + path, params=params)
        await response.read()
        body = await response.json()
        assert response.status == status, body
        return body

    async def post(self, path: str, body: Any, status: int = 200) -> Any:
        response = await self.client.post(
            self.url + path, json=body, headers={"X-CSRF-Token": self.csrf}
        )
        await response.read()
        answer = await response.json()
        assert response.status == status, answer
        return answer

    async def rows(self, folder: str = "INBOX", **params: Any) -> list[dict[str, Any]]:
        return list((await self.get("/webmail/api/messages", folder=folder, **params))["messages"])


@pytest.fixture
async def browser(webmail: Webmail) -> AsyncIterator[Browser]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        yield Browser(client, webmail.url)


async def wait_rows(browser: Browser, count: int, folder: str = "INBOX") -> list[dict[str, Any]]:
    """The list once it has ``count`` rows (mail is relayed a few milliseconds later)."""
    for _ in range(200):
        rows = await browser.rows(folder)
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"{folder} never had {count} messages: {rows}")


async def test_login_lists_folders_and_reads_a_message(webmail: Webmail, browser: Browser):
    send(webmail, mail(html="<p>Hi <b>there</b></p>", attach=BINARY))
    webmail.sandbox.wait_for(to="larry@beta.test")
    who = await browser.login("larry@beta.test")
    assert who["user"] == "larry@beta.test" and not who["all"]

    folders = (await browser.get("/webmail/api/folders"))["folders"]
    assert [(f["folder"], f["messages"], f["unseen"]) for f in folders] == [
        ("INBOX", 1, 1),
        ("Junk", 0, 0),  # where DMARC p=quarantine files mail
        ("Sent", 0, 0),
        ("Trash", 0, 0),
    ]
    [row] = await browser.rows()
    assert row["subject"] == "Welcome aboard" and not row["seen"]
    assert row["from"] == [{"name": "The App", "address": "app@alpha.test"}]

    message = await browser.get("/webmail/api/message", folder="INBOX", uid=row["uid"])
    assert message["text"] == "Hello!\nVerify at https://app.test/verify?t=1\n"
    assert message["has_html"] and message["seen"]
    assert message["links"] == ["https://app.test/verify?t=1"]
    assert ("Subject", "Welcome aboard") in [tuple(h) for h in message["headers"]]
    assert message["attachments"] == [
        {
            "index": 0,
            "filename": "data.bin",
            "content_type": "application/octet-stream",
            "size": len(BINARY),
        }
    ]
    stored = webmail.sandbox.messages(to="larry@beta.test")
    assert message["id"] == stored[0].id  # the per-copy id the journey endpoint takes
    assert stored[0].auth is not None  # beta.test's MX checked it: the view shows its verdicts
    assert message["auth"] == stored[0].auth.as_json()
    assert message["auth"]["dkim"] == "pass"

    response = await browser.client.get(
        webmail.url + "/webmail/api/attachment",
        params={"folder": "INBOX", "uid": row["uid"], "index": 0},
    )
    await response.read()
    assert await response.read() == BINARY
    assert response.headers["Content-Disposition"].startswith('attachment; filename="data.bin"')
    raw = await browser.client.get(
        webmail.url + "/webmail/api/raw", params={"folder": "INBOX", "uid": row["uid"]}
    )
    await raw.read()
    assert await raw.read() == stored[0].raw
    # Opening it read it: the unread count went down, over IMAP like any client.
    folders = (await browser.get("/webmail/api/folders"))["folders"]
    assert folders[0]["unseen"] == 0


async def test_message_html_is_served_under_a_csp_that_blocks_every_load(
    webmail: Webmail, browser: Browser
):
    html = '<p>x</p><script>alert(1)</script><img src="https://tracker.test/p.gif">'
    refresh = '<meta http-equiv="refresh" content="0;url=https://tracker.test/">'
    send(webmail, mail(html=refresh + html))
    await browser.login("larry@beta.test")
    [row] = await wait_rows(browser, 1)
    message = await browser.get("/webmail/api/message", folder="INBOX", uid=row["uid"])
    assert message["remote_content"]
    params = {"folder": "INBOX", "uid": row["uid"]}
    frame = await browser.client.get(webmail.url + "/webmail/api/frame", params=params)
    await frame.read()
    policy = frame.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "sandbox" in policy
    assert "img-src data:;" in policy  # no remote images
    assert "script-src" not in policy  # default-src 'none' covers scripts
    assert (await frame.text()).strip() == html  # the refresh is gone, the rest as sent
    shown = await browser.client.get(
        webmail.url + "/webmail/api/frame", params={**params, "images": "1"}
    )
    await shown.read()
    assert "img-src data: http: https:;" in shown.headers["Content-Security-Policy"]
    page = await browser.client.get(webmail.url + "/")
    await page.read()
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]


async def test_new_mail_flags_and_expunges_reach_the_websocket(webmail: Webmail, browser: Browser):
    who = await browser.login("larry@beta.test")
    assert await browser.rows() == []  # listing INBOX selects it: IDLE watches it
    socket = await browser.client.ws_connect(
        webmail.url + "/webmail/api/events", params={"csrf": who["csrf"]}
    )
    assert (await socket.receive_json())["type"] == "hello"
    send(webmail, mail())
    pushed = await asyncio.wait_for(socket.receive_json(), 10)
    assert pushed == {"type": "changed", "folder": "INBOX", "exists": 1, "expunged": 0, "flags": 0}

    # A change made by another IMAP client reaches the page too (IDLE, RFC 2177).
    with imaplib.IMAP4(*webmail.sandbox.imap_address) as other:
        other.login("larry@beta.test", "x")
        other.select("INBOX")
        other.uid("STORE", "1", "+FLAGS", "(\\Flagged)")
        pushed = await asyncio.wait_for(socket.receive_json(), 10)
        assert pushed["flags"] == 1
        other.uid("STORE", "1", "+FLAGS", "(\\Deleted)")
        await asyncio.wait_for(socket.receive_json(), 10)
        other.expunge()
        while pushed.get("expunged") != 1:
            pushed = await asyncio.wait_for(socket.receive_json(), 10)
    assert await browser.rows() == []
    await socket.close()


async def test_flag_move_delete_and_search(webmail: Webmail, browser: Browser):
    for subject in ("Invoice 1", "Invoice 2", "Newsletter"):
        send(webmail, mail(subject=subject))
    await browser.login("larry@beta.test")
    rows = await wait_rows(browser, 3)
    assert [r["subject"] for r in rows] == ["Newsletter", "Invoice 2", "Invoice 1"]  # newest first
    by_subject = {r["subject"]: r["uid"] for r in rows}

    found = await browser.rows(q="invoice")
    assert sorted(r["subject"] for r in found) == ["Invoice 1", "Invoice 2"]
    assert await browser.rows(q="nothing-like-this") == []
    page = await browser.get("/webmail/api/messages", folder="INBOX", start=1, limit=1)
    assert page["total"] == 3 and [r["subject"] for r in page["messages"]] == ["Invoice 2"]

    await browser.post(
        "/webmail/api/flags",
        {"folder": "INBOX", "uids": [by_subject["Newsletter"]], "add": ["\\Flagged"]},
    )
    assert [r["flagged"] for r in await browser.rows()] == [True, False, False]

    await browser.post(
        "/webmail/api/delete", {"folder": "INBOX", "uids": [by_subject["Invoice 1"]]}
    )
    assert [r["subject"] for r in await browser.rows()] == ["Newsletter", "Invoice 2"]
    [trashed] = await browser.rows("Trash")
    assert trashed["subject"] == "Invoice 1"
    answer = await browser.post(
        "/webmail/api/delete", {"folder": "Trash", "uids": [trashed["uid"]]}
    )
    assert answer["expunged"] and await browser.rows("Trash") == []

    await browser.post(
        "/webmail/api/move", {"folder": "INBOX", "uids": [by_subject["Invoice 2"]], "to": "Sent"}
    )
    assert [r["subject"] for r in await browser.rows("Sent")] == ["Invoice 2"]


async def test_compose_reply_and_forward_travel_the_whole_journey(
    webmail: Webmail, browser: Browser
):
    await browser.login("larry@beta.test")
    sent = await browser.post(
        "/webmail/api/send",
        {"to": "Ann <ann@gamma.test>", "cc": "", "subject": "Lunch?", "body": "At noon?"},
    )
    assert sent["reply"].startswith("2.0.0")
    arrived = webmail.sandbox.wait_for(to="ann@gamma.test", subject="Lunch?")
    assert arrived.text == "At noon?\n"
    assert any(
        hop.step == "submitted" and hop.detail.get("auth_user") == "larry@beta.test"
        for hop in arrived.journey
    )
    assert [r["subject"] for r in await wait_rows(browser, 1, "Sent")] == ["Lunch?"]

    send(webmail, mail(subject="Question"))
    [row] = await wait_rows(browser, 1)
    await browser.get("/webmail/api/message", folder="INBOX", uid=row["uid"])
    await browser.post(
        "/webmail/api/send",
        {
            "mode": "reply",
            "source": {"folder": "INBOX", "uid": row["uid"]},
            "to": "app@alpha.test",
            "subject": "Re: Question",
            "body": "Yes.",
        },
    )
    reply = webmail.sandbox.wait_for(to="app@alpha.test", subject="Re: Question")
    assert reply.headers["In-Reply-To"] == "<Question@alpha.test>"
    assert (await browser.rows())[0]["answered"]

    await browser.post(
        "/webmail/api/send",
        {
            "mode": "forward",
            "source": {"folder": "INBOX", "uid": row["uid"]},
            "to": "ann@gamma.test",
            "subject": "Fwd: Question",
            "body": "See below.",
        },
    )
    forwarded = webmail.sandbox.wait_for(to="ann@gamma.test", subject="Fwd: Question")
    assert [a.content_type for a in forwarded.attachments] == ["message/rfc822"]
    assert b"Subject: Question" in forwarded.attachments[0].data

    bad = await browser.post("/webmail/api/send", {"to": "not an address", "body": "x"}, status=400)
    assert "not an email address" in bad["Error"]
    none = await browser.post("/webmail/api/send", {"to": "", "body": "x"}, status=400)
    assert "at least one recipient" in none["Error"]


async def test_all_sees_every_mailbox_and_cannot_send(webmail: Webmail, browser: Browser):
    send(webmail, mail(to="larry@beta.test"))
    send(webmail, mail(to="ann@gamma.test", subject="For Ann"))
    webmail.sandbox.wait_for(to="ann@gamma.test")
    webmail.sandbox.wait_for(to="larry@beta.test")
    who = await browser.login("all")
    assert who["all"]
    names = {f["name"] for f in (await browser.get("/webmail/api/folders"))["folders"]}
    assert {"larry@beta.test/INBOX", "ann@gamma.test/INBOX", "app@alpha.test/Sent"} <= names
    [row] = await browser.rows("ann@gamma.test/INBOX")
    message = await browser.get(
        "/webmail/api/message", folder="ann@gamma.test/INBOX", uid=row["uid"]
    )
    assert message["mailbox"] == "ann@gamma.test" and message["subject"] == "For Ann"
    assert message["id"] == webmail.sandbox.messages(to="ann@gamma.test")[0].id
    refused = await browser.post(
        "/webmail/api/send", {"to": "x@beta.test", "body": "x"}, status=403
    )
    assert "log in as a mailbox address" in refused["Error"]


async def test_csrf_origin_and_session_are_checked(webmail: Webmail, browser: Browser):
    anonymous = await browser.get("/webmail/api/folders", status=401)
    assert "log in" in anonymous["Error"]
    await browser.login("larry@beta.test")
    url = webmail.url + "/webmail/api/flags"
    change = {"folder": "INBOX", "uids": [1], "add": ["\\Seen"]}
    no_token = await browser.client.post(url, json=change)
    await no_token.read()
    assert no_token.status == 403 and "CSRF" in (await no_token.json())["Error"]
    cross = await browser.client.post(
        url,
        json=change,
        headers={"X-CSRF-Token": browser.csrf, "Origin": "https://evil.test"},
    )
    await cross.read()
    assert cross.status == 403
    cross_login = await browser.client.post(
        webmail.url + "/webmail/api/login",
        json={"user": "x@beta.test"},
        headers={"Origin": "https://evil.test"},
    )
    await cross_login.read()
    assert cross_login.status == 403
    form_login = await browser.client.post(
        webmail.url + "/webmail/api/login", data={"user": "x@beta.test"}
    )
    await form_login.read()
    assert form_login.status == 415  # a cross-site form cannot send JSON
    bad_socket = await browser.client.get(
        webmail.url + "/webmail/api/events", params={"csrf": "wrong"}
    )
    await bad_socket.read()
    assert bad_socket.status == 403
    login = await browser.client.post(
        webmail.url + "/webmail/api/login", json={"user": "larry@beta.test", "password": "x"}
    )
    await login.read()
    cookie = login.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


async def test_bad_input_gets_a_json_error(webmail: Webmail, browser: Browser):
    await browser.login("larry@beta.test")
    assert (
        "whole number"
        in (await browser.get("/webmail/api/messages", 400, folder="INBOX", start="x"))["Error"]
    )
    assert (
        "between"
        in (await browser.get("/webmail/api/messages", 400, folder="INBOX", limit=0))["Error"]
    )
    assert "folder is required" in (await browser.get("/webmail/api/messages", 400))["Error"]
    missing = await browser.get("/webmail/api/messages", 404, folder="No Such Folder")
    assert "No such mailbox" in missing["Error"]
    gone = await browser.get("/webmail/api/message", 404, folder="INBOX", uid=99)
    assert "no message with UID 99" in gone["Error"]
    assert (await browser.post("/webmail/api/flags", {"folder": "INBOX", "uids": "1"}, 400))[
        "Error"
    ]
    assert (
        "cannot set"
        in (
            await browser.post(
                "/webmail/api/flags", {"folder": "INBOX", "uids": [1], "add": ["\\Deleted"]}, 400
            )
        )["Error"]
    )
    refused = await browser.client.post(webmail.url + "/webmail/api/login", json={"user": "nobody"})
    await refused.read()
    assert refused.status == 400
    # The server keeps serving after all of that.
    assert (await browser.get("/webmail/api/folders"))["folders"]


async def test_the_imap_session_lives_with_the_browser_session(webmail: Webmail, browser: Browser):
    before = webmail.imap_connections()
    await browser.login("larry@beta.test")
    assert await browser.rows() == []  # listing INBOX selects it: IDLE watches it
    assert webmail.imap_connections() == before + 1
    [session] = webmail.app[SESSIONS_KEY]._by_token.values()
    for _ in range(100):  # IDLE starts right after the request's commands
        if session.imap._client.has_pending_idle():
            break
        await asyncio.sleep(0.02)
    assert session.imap._client.has_pending_idle()
    # The sandbox's session log shows it like any client's: user, folder, IDLE, open.
    [logged] = await imap_log(webmail, browser, lambda s: len(s) == 1 and s[0]["idling"])
    assert (logged["user"], logged["folder"], logged["open"]) == ("larry@beta.test", "INBOX", True)
    await browser.post("/webmail/api/logout", {})
    for _ in range(100):
        if webmail.imap_connections() == before:
            break
        await asyncio.sleep(0.02)
    assert webmail.imap_connections() == before
    assert (await browser.get("/webmail/api/folders", 401))["Error"]
    [closed] = await imap_log(webmail, browser, lambda s: len(s) == 1 and not s[0]["open"])
    assert closed["session_id"] == logged["session_id"] and not closed["idling"]
    assert closed["steps"][-1].endswith("disconnected")


async def imap_log(
    webmail: Webmail, browser: Browser, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """The IMAP part of the session log once ``done`` holds (it is journaled just after)."""
    sessions: list[dict[str, Any]] = []
    for _ in range(250):
        response = await browser.client.get(
            webmail.sandbox.http_url + "/api/v1/sessions", params={"protocol": "imap"}
        )
        sessions = (await response.json())["sessions"]
        if done(sessions):
            return sessions
        await asyncio.sleep(0.02)
    raise AssertionError(f"the IMAP session log never got there: {sessions}")


@pytest.mark.parametrize("webmail_options", [{"session_idle": 0.2}])
async def test_an_idle_session_expires_and_logs_out_of_imap(webmail: Webmail, browser: Browser):
    before = webmail.imap_connections()
    await browser.login("larry@beta.test")
    assert webmail.imap_connections() == before + 1
    for _ in range(200):
        if webmail.session_count() == 0 and webmail.imap_connections() == before:
            break
        await asyncio.sleep(0.05)
    assert webmail.session_count() == 0
    assert webmail.imap_connections() == before
    assert (await browser.get("/webmail/api/folders", 401))["Error"]


async def test_the_http_listener_serves_the_webmail_behind_its_guard(webmail: Webmail):
    url = webmail.sandbox.http_url
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        page = await client.get(url + "/")
        await page.read()
        assert page.status == 200 and "mail-sandbox webmail" in await page.text()
        script = await client.get(url + "/webmail/static/app.js")
        await script.read()
        assert script.status == 200 and "javascript" in script.content_type
        rebinding = await client.get(url + "/", headers={"Host": "evil.test"})
        await rebinding.read()
        assert rebinding.status == 403
        login = await client.post(
            url + "/webmail/api/login", json={"user": "larry@beta.test", "password": "x"}
        )
        await login.read()
        assert login.status == 200
        journey = await client.get(url + "/api/v1/message/1/journey")
        await journey.read()
        assert journey.status == 404  # nothing stored yet: the sandbox API's own JSON error
        assert "Error" in await journey.json()


async def test_with_accounts_a_wrong_password_is_refused():
    config = replace(load_config(env={}), accounts=(Account("larry@beta.test", "right"),))
    with Sandbox(config=config) as sandbox:
        url = sandbox.http_url
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
            wrong = await client.post(
                url + "/webmail/api/login", json={"user": "larry@beta.test", "password": "nope"}
            )
            await wrong.read()
            assert wrong.status == 401
            assert "login refused" in (await wrong.json())["Error"]
            browser = Browser(client, url)
            await browser.login("larry@beta.test", "right")
            sent = await browser.post(
                "/webmail/api/send", {"to": "ann@gamma.test", "subject": "Hi", "body": "x"}
            )
            assert sent["reply"].startswith("2.0.0")  # SMTP AUTH with the same password


async def test_search_text_must_be_ascii(webmail: Webmail, browser: Browser):
    await browser.login("larry@beta.test")
    refused = await browser.get("/webmail/api/messages", 400, folder="INBOX", q="café")
    assert "ASCII" in refused["Error"]


async def test_when_tls_comes_before_login_the_webmail_uses_imaps_and_starttls():
    base = load_config(env={})
    config = replace(base, tls=replace(base.tls, require_before_auth=True))
    with Sandbox(config=config) as sandbox:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
            browser = Browser(client, sandbox.http_url)
            await browser.login("larry@beta.test")
            assert [f["folder"] for f in (await browser.get("/webmail/api/folders"))["folders"]]
            await browser.post(
                "/webmail/api/send", {"to": "ann@gamma.test", "subject": "Over TLS", "body": "x"}
            )
            arrived = sandbox.wait_for(to="ann@gamma.test", subject="Over TLS")
            submitted = next(h for h in arrived.journey if h.step == "submitted")
            assert submitted.detail.get("tls")
