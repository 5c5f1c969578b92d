"""The webmail in a real browser: Debian's headless Chromium driven by Playwright.

The sandbox runs on port 0 with its own HTTP listener; the page is used as a person uses
it (clicks and keys), and what it shows is checked against what was sent over SMTP.
Screenshots of the main views, light and dark, are taken on the way; with
``MAIL_SANDBOX_SCREENSHOTS=1`` they are also written to ``docs/`` for the README.
"""

from __future__ import annotations

import os
import shutil
import smtplib
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from sandbox.runtime import Runtime
from sandbox.testing import Sandbox
from tests.conftest import require_binary

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS = Path(__file__).resolve().parents[2] / "docs"
WAIT_MS = 10_000  # generous under load; tests/bench/webmail.py measures the real time


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = require_binary("chromium")
    with sync_playwright() as playwright:
        # launch() gives every run a fresh, temporary user-data directory.
        launched = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as running:
        yield running


class Tracker:
    """A stand-in for the remote web: records every request a page makes to it."""

    def __init__(self) -> None:
        hits: list[str] = []
        self.hits = hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.end_headers()
                self.wfile.write(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tracker() -> Iterator[Tracker]:
    running = Tracker()
    yield running
    running.close()


def send(sandbox: Sandbox, message: EmailMessage) -> None:
    with smtplib.SMTP(*sandbox.smtp_address) as smtp:
        smtp.send_message(message)


def mail(
    subject: str,
    *,
    to: str = "larry@beta.test",
    sender: str = "Shop <orders@alpha.test>",
    text: str = "Hello!",
    html: str | None = None,
    attach: tuple[str, bytes] | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=True)
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    if attach is not None:
        message.add_attachment(
            attach[1], maintype="application", subtype="octet-stream", filename=attach[0]
        )
    return message


def log_in(browser: Browser, sandbox: Sandbox, user: str, **context: Any) -> Page:
    page = browser.new_context(**context).new_page()
    page.goto(sandbox.http_url + "/")
    page.fill("#login-user", user)
    page.fill("#login-password", "secret")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#list-title")).not_to_be_empty()
    page.evaluate("window.__noReload = true")
    return page


def rows(page: Page) -> Any:
    return page.locator("[data-testid=row]")


def imap_connections(sandbox: Sandbox) -> int:
    async def count(runtime: Runtime) -> int:
        return sum(len(listener.connections) for listener in runtime._imap_listeners)

    return sandbox.call(count)


def shoot(page: Page, name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000
    if os.environ.get("MAIL_SANDBOX_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(path, DOCS / path.name)


def test_live_mail_html_is_harmless_and_attachments_download(
    browser: Browser, sandbox: Sandbox, tracker: Tracker, tmp_path: Path
):
    before = imap_connections(sandbox)
    page = log_in(browser, sandbox, "larry@beta.test")
    assert imap_connections(sandbox) == before + 1  # the page's own IMAP session
    expect(page.locator("#list-empty")).to_be_visible()

    payload = bytes(range(256)) * 64
    html = (
        "<h1>Your order</h1><p>Thanks!</p>"
        f'<img src="{tracker.url}/remote.png" alt="remote">'
        f'<script>new Image().src = "{tracker.url}/script-ran";</script>'
        f'<img src="x" onerror="new Image().src=\'{tracker.url}/handler-ran\'">'
    )
    send(sandbox, mail("Order shipped", html=html, attach=("invoice.bin", payload)))
    # It shows up with no reload: the WebSocket told the page.
    expect(rows(page)).to_have_count(1, timeout=WAIT_MS)
    expect(rows(page).first).to_contain_text("Order shipped")
    assert page.evaluate("window.__noReload") is True

    page.keyboard.press("Enter")
    frame = page.frame_locator("iframe.html-frame")
    expect(frame.locator("h1")).to_have_text("Your order")
    expect(page.locator("[data-testid=images-blocked]")).to_be_visible()
    assert tracker.hits == []  # neither the image nor the script reached the "internet"

    with page.expect_download() as download:
        page.click("text=Attachments (1)")
        page.click("[data-testid=attachment]")
    assert Path(download.value.path()).read_bytes() == payload

    page.click("text=HTML")
    page.click("text=Show remote images")
    expect(page.frame_locator("iframe.html-frame").locator("h1")).to_have_text("Your order")
    page.wait_for_function(
        "() => document.querySelector('iframe.html-frame').contentDocument === null"
    )
    deadline = 100
    while "/remote.png" not in tracker.hits and deadline:
        page.wait_for_timeout(50)
        deadline -= 1
    assert "/remote.png" in tracker.hits  # asked for: now it loads
    assert "/script-ran" not in tracker.hits and "/handler-ran" not in tracker.hits

    page.click("#logout")
    expect(page.locator("#login")).to_be_visible()
    deadline = 100
    while imap_connections(sandbox) != before and deadline:
        page.wait_for_timeout(50)
        deadline -= 1
    assert imap_connections(sandbox) == before  # logging out ended the IMAP session


def test_compose_arrives_in_the_other_users_page(browser: Browser, sandbox: Sandbox):
    ann = log_in(browser, sandbox, "ann@gamma.test")
    larry = log_in(browser, sandbox, "larry@beta.test")
    larry.keyboard.press("c")
    larry.fill("#compose-to", "Ann <ann@gamma.test>")
    larry.fill("#compose-subject", "Lunch on Friday?")
    larry.fill("#compose-body", "Noon at the usual place?")
    larry.click("#compose-send")
    expect(larry.locator("#compose-dialog")).not_to_be_visible()
    expect(rows(ann)).to_have_count(1, timeout=WAIT_MS)
    expect(rows(ann).first).to_contain_text("Lunch on Friday?")
    expect(rows(ann).first).to_contain_text("larry@beta.test")
    assert ann.evaluate("window.__noReload") is True

    ann.keyboard.press("Enter")
    expect(ann.locator("[data-testid=text]")).to_have_text("Noon at the usual place?\n")
    ann.keyboard.press("r")
    expect(ann.locator("#compose-to")).to_have_value("larry@beta.test")
    expect(ann.locator("#compose-subject")).to_have_value("Re: Lunch on Friday?")
    ann.fill("#compose-body", "Yes!")
    ann.keyboard.press("Control+Enter")
    expect(rows(larry).filter(has_text="Re: Lunch on Friday?")).to_have_count(1, timeout=WAIT_MS)
    reply = sandbox.wait_for(to="larry@beta.test", subject="Re: Lunch on Friday?")
    assert reply.headers["In-Reply-To"]


def test_delete_search_and_keys(browser: Browser, sandbox: Sandbox):
    for subject in ("Invoice March", "Invoice April", "Weekly digest"):
        send(sandbox, mail(subject))
    for subject in ("Invoice March", "Invoice April", "Weekly digest"):
        sandbox.wait_for(to="larry@beta.test", subject=subject)
    page = log_in(browser, sandbox, "larry@beta.test")
    expect(rows(page)).to_have_count(3)
    expect(page.locator(".folder[data-folder=INBOX] .badge")).to_have_text("3")

    page.keyboard.press("/")
    page.keyboard.type("invoice")
    page.keyboard.press("Enter")
    expect(rows(page)).to_have_count(2)
    expect(page.locator("#list-count")).to_have_text("2 found")
    page.keyboard.press("Escape")  # out of the search box
    page.keyboard.press("Escape")  # the search itself
    expect(rows(page)).to_have_count(3)

    page.keyboard.press("j")
    expect(rows(page).nth(1)).to_have_class("row unread cursor")
    page.keyboard.press("Enter")
    expect(page.locator(".message-head h1")).to_have_text("Invoice April")
    page.keyboard.press("s")
    expect(rows(page).nth(1)).to_contain_text("★")
    page.keyboard.press("#")
    expect(rows(page)).to_have_count(2)
    expect(page.locator(".folder[data-folder=Trash] .count")).to_have_text("1")  # read already
    page.click(".folder[data-folder=Trash]")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("Invoice April")
    page.keyboard.press("?")
    expect(page.locator("#help-dialog")).to_be_visible()


def test_the_journey_tab_draws_the_hops(browser: Browser, sandbox: Sandbox):
    send(sandbox, mail("Track me"))
    sandbox.wait_for(to="larry@beta.test", subject="Track me")
    page = log_in(browser, sandbox, "larry@beta.test")
    rows(page).first.click()
    expect(page.locator(".message-head h1")).to_have_text("Track me")
    # beta.test's MX checked the message: its verdicts sit in the header block.
    expect(page.locator("[data-testid=auth]")).to_have_text("SPF pass · DKIM pass · DMARC pass")
    page.keyboard.press("7")
    journey = page.locator("[data-testid=journey]")
    expect(journey).to_contain_text("submission server")
    expect(journey).to_contain_text("DNS: where does beta.test take mail?")
    expect(journey).to_contain_text("mailbox larry@beta.test / INBOX")
    assert journey.locator(".stage").count() >= 4


def test_all_sees_every_mailbox_the_queue_dns_and_chaos(browser: Browser, sandbox: Sandbox):
    send(sandbox, mail("For Larry"))
    send(sandbox, mail("For Ann", to="ann@gamma.test"))
    sandbox.wait_for(to="ann@gamma.test")
    sandbox.wait_for(to="larry@beta.test")
    page = log_in(browser, sandbox, "all")
    sidebar = page.locator("#sidebar")
    expect(sidebar).to_contain_text("larry@beta.test")
    expect(sidebar).to_contain_text("ann@gamma.test")
    page.click(".folder[data-folder='ann@gamma.test/INBOX']")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("For Ann")
    expect(page.locator("#compose")).to_be_hidden()

    page.click(".folder[data-view=dns]")
    expect(page.locator("[data-testid=dns]")).to_contain_text("beta.test")
    page.click(".folder[data-view=queue]")
    expect(page.locator("#view-pane")).to_contain_text("Relay queue")
    page.click(".folder[data-view=chaos]")
    row = page.locator("[data-testid=chaos] tr[data-domain='beta.test']")
    row.locator("select").first.select_option("greylist")
    row.locator("button").click()
    in_force = page.locator("[data-testid=chaos] tr[data-domain='beta.test'] td:nth-child(5)")
    expect(in_force).to_contain_text("greylist")
    settings = sandbox.call(lambda runtime: _chaos(runtime, "beta.test"))
    assert settings is not None and settings.mx is not None and settings.mx.mode == "greylist"


async def _chaos(runtime: Runtime, domain: str) -> Any:
    return runtime.chaos.settings().get(domain)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_screenshots_of_the_main_views(
    browser: Browser, sandbox: Sandbox, theme: str, tmp_path: Path
):
    samples = [
        ("Your order #1042 has shipped", "Shop <orders@alpha.test>"),
        ("Verify your email address", "Accounts <no-reply@alpha.test>"),
        ("Weekly digest: 12 new posts", "Forum <digest@gamma.test>"),
        ("Password reset requested", "Security <security@alpha.test>"),
    ]
    html = (
        "<div style='font-family:sans-serif;max-width:560px'><h2>Your order has shipped</h2>"
        "<p>Order <b>#1042</b> left our warehouse today.</p>"
        "<p><a href='https://shop.test/track/1042'>Track your parcel</a></p></div>"
    )
    for subject, sender in samples:
        send(sandbox, mail(subject, sender=sender, html=html, text="Order #1042 has shipped."))
        sandbox.wait_for(to="larry@beta.test", subject=subject)
    page = log_in(
        browser,
        sandbox,
        "larry@beta.test",
        viewport={"width": 1280, "height": 760},
        color_scheme=theme,
    )
    expect(rows(page)).to_have_count(4)
    shoot(page, f"webmail-inbox-{theme}", tmp_path)
    rows(page).last.click()
    expect(page.frame_locator("iframe.html-frame").locator("h2")).to_be_visible()
    shoot(page, f"webmail-message-{theme}", tmp_path)
    page.keyboard.press("7")
    expect(page.locator("[data-testid=journey]")).to_be_visible()
    shoot(page, f"webmail-journey-{theme}", tmp_path)
    narrow = log_in(
        browser,
        sandbox,
        "larry@beta.test",
        viewport={"width": 420, "height": 760},
        color_scheme=theme,
    )
    expect(rows(narrow)).to_have_count(4)
    shoot(narrow, f"webmail-narrow-{theme}", tmp_path)
    everything = log_in(
        browser, sandbox, "all", viewport={"width": 1280, "height": 760}, color_scheme=theme
    )
    everything.click(".folder[data-view=dns]")
    expect(everything.locator("[data-testid=dns]")).to_be_visible()
    shoot(everything, f"webmail-all-dns-{theme}", tmp_path)
