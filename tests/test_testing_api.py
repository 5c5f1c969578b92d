"""sandbox.testing: the blocking and the async API a test drives a sandbox with."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import ssl
import threading
from email.message import EmailMessage

import aiosmtplib
import pytest

from sandbox.testing import AsyncSandbox, Sandbox, sandbox_config


def welcome(sender: str = "app@alpha.test", to: str = "ann@beta.test") -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"The App <{sender}>"
    message["To"] = to
    message["Subject"] = "=?utf-8?q?Willkommen_=C3=A0_bord?="
    message.set_content("Verify: https://app.test/verify?t=1\n")
    message.add_alternative('<a href="https://app.test/verify?t=1">verify</a>', subtype="html")
    message.add_attachment(
        b"\x00\x01PDF", maintype="application", subtype="pdf", filename="terms.pdf"
    )
    return message


def send(address: tuple[str, int], message: EmailMessage, *rcpts: str) -> None:
    with smtplib.SMTP(*address) as client:
        client.send_message(message, to_addrs=list(rcpts) or None)


@pytest.fixture(scope="module")
def box():
    with Sandbox() as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh(box):
    box.reset()


def test_addresses_are_real_listeners(box):
    for address in (box.smtp_address, box.pop3_address, box.imap_address):
        assert address[0] == "127.0.0.1"
        assert address[1] > 0
    assert box.dns_address[1] > 0
    assert set(box.mx_addresses) == {"alpha.test", "beta.test", "gamma.test"}
    assert box.ca_path.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    context = ssl.create_default_context(cafile=str(box.ca_path))
    with smtplib.SMTP_SSL(*box.smtps_address, context=context) as client:
        assert client.noop()[0] == 250


def test_wait_for_returns_the_relayed_copy_parsed(box):
    send(box.smtp_address, welcome())
    message = box.wait_for(to="ann@beta.test", subject="Willkommen")
    assert message.mailbox == "ann@beta.test"
    assert message.folder == "INBOX"
    assert message.sender == "app@alpha.test"
    assert message.to == ("ann@beta.test",)
    assert message.subject == "Willkommen à bord"
    assert message.headers["SUBJECT"] == "Willkommen à bord"
    assert len(message.headers.get_all("received")) == 2  # submission, then the MX server
    assert message.text == "Verify: https://app.test/verify?t=1\n"
    assert message.html is not None and "href" in message.html
    assert [(a.filename, a.content_type, a.data) for a in message.attachments] == [
        ("terms.pdf", "application/pdf", b"\x00\x01PDF")
    ]
    assert message.links == ("https://app.test/verify?t=1",)
    assert not message.held
    assert message.raw.startswith(b"Return-Path: <app@alpha.test>\r\nReceived:")
    assert message.journey[0].step == "submitted"
    assert message.journey[-1].outcome == "delivered"
    assert message.email()["To"] == "ann@beta.test"
    # The Sent copy exists too, but only when every folder is asked for.
    assert [m.folder for m in box.messages(to="app@alpha.test", folder=None)] == ["Sent"]
    assert box.messages(to="app@alpha.test") == []


def test_wait_for_sees_a_message_that_arrives_later(box):
    timer = threading.Timer(0.2, send, (box.smtp_address, welcome(to="late@beta.test")))
    timer.start()
    try:
        message = box.wait_for(to="late@beta.test", timeout=5)
    finally:
        timer.join()
    assert message.mailbox == "late@beta.test"


def test_held_mail_and_filters(box):
    send(box.smtp_address, welcome(to="ceo@realcompany.com"))
    held = box.wait_for(to="ceo@realcompany.com")
    assert held.held
    send(box.smtp_address, welcome(to="bob@gamma.test"))
    box.wait_for(to="@gamma.test")
    assert [m.mailbox for m in box.messages(sender="app@alpha.test")] == [
        "ceo@realcompany.com",
        "bob@gamma.test",
    ]
    assert box.messages(subject="nothing like it") == []
    assert box.message(held.id).subject == held.subject


def test_wait_for_new_ignores_what_was_there(box):
    send(box.smtp_address, welcome())
    first = box.wait_for(to="ann@beta.test")
    with pytest.raises(TimeoutError):
        box.wait_for(to="ann@beta.test", new=True, timeout=0.3)
    assert box.wait_for(to="ann@beta.test").id == first.id


def test_timeout_names_what_it_waited_for_and_what_arrived(box):
    send(box.smtp_address, welcome())
    box.wait_for(to="ann@beta.test")
    with pytest.raises(TimeoutError) as caught:
        box.wait_for(to="zed@beta.test", subject="Reset", timeout=0.2)
    text = str(caught.value)
    assert "no message to zed@beta.test with subject containing 'Reset'" in text
    assert "within 0.2s" in text
    assert "2 messages stored" in text
    assert "ann@beta.test/INBOX from app@alpha.test" in text
    assert "app@alpha.test/Sent" in text


def test_clear_and_reset(box):
    send(box.smtp_address, welcome())
    box.wait_for(to="ann@beta.test")
    assert box.clear() == 2
    assert box.messages(folder=None) == []


def test_chaos_reject_bounces_and_pending_deliveries_are_reported(box):
    box.chaos("beta.test").reject(code=550, stage="rcpt")
    send(box.smtp_address, welcome())
    bounce = box.wait_for(to="app@alpha.test", subject="Undelivered")
    assert "550" in bounce.raw.decode()
    box.chaos("beta.test").tempfail()
    send(box.smtp_address, welcome(to="eve@beta.test"))
    with pytest.raises(TimeoutError, match=r"relay deliveries not done yet:\n  beta.test"):
        box.wait_for(to="eve@beta.test", timeout=0.5)
    assert box.chaos("beta.test").off().describe() == "off"
    # reset() also puts the chaos back: the next test starts with none.
    box.chaos("gamma.test").dns("servfail")
    box.reset()
    assert box.runtime.chaos.settings() == {}


def test_chaos_greylist_delays_then_delivers(box):
    box.chaos("beta.test").greylist(seconds=0.3)
    send(box.smtp_address, welcome())
    message = box.wait_for(to="ann@beta.test", timeout=10)
    outcomes = [hop.outcome for hop in message.journey]
    assert "deferred" in outcomes
    assert outcomes[-1] == "delivered"


def test_chaos_checks_domains_and_values(box):
    with pytest.raises(ValueError, match="not one of this sandbox's domains"):
        box.chaos("example.com")
    with pytest.raises(ValueError, match="5xx"):
        box.chaos("beta.test").reject(code=451)
    with pytest.raises(ValueError, match="unknown DNS fault"):
        box.chaos("beta.test").dns("sometimes")


def test_pop3_and_imap_read_the_same_message(box):
    send(box.smtp_address, welcome())
    box.wait_for(to="ann@beta.test")
    pop = poplib.POP3(*box.pop3_address, timeout=5)
    try:
        pop.user("ann@beta.test")
        pop.pass_("x")
        assert pop.stat()[0] == 1
    finally:
        pop.quit()
    with imaplib.IMAP4(*box.imap_address, timeout=5) as imap:
        imap.login("ann@beta.test", "x")
        status, data = imap.select("INBOX", readonly=True)
        assert status == "OK"
        assert data == [b"1"]


def test_custom_domains_and_memory_store():
    with Sandbox(domains=["shop.test", "Bank.Test"], data=":memory:") as sandbox:
        assert sandbox.domains == ("shop.test", "bank.test")
        assert sandbox.data_path == ":memory:"
        send(sandbox.smtp_address, welcome("noreply@shop.test", "me@bank.test"))
        assert sandbox.wait_for(to="me@bank.test").sender == "noreply@shop.test"
    assert not sandbox.running
    with pytest.raises(RuntimeError, match="not running"):
        sandbox.messages()


def test_config_keeps_domains_but_not_ports(tmp_path):
    from sandbox.config import load_config

    config = load_config(env={}, flags={"domains": ("one.test",), "smtp.port": 1025})
    made = sandbox_config(config=config, data=str(tmp_path / "x.sqlite3"))
    assert [d.name for d in made.domains] == ["one.test"]
    assert made.smtp.port == made.imap.port == made.mx.port == made.dns.port == 0
    assert made.relay.retry_schedule == config.relay.retry_schedule
    with pytest.raises(ValueError, match="at least one domain"):
        sandbox_config([])


async def test_async_sandbox_in_the_callers_loop():
    async with AsyncSandbox(domains=["shop.test"]) as sandbox:
        message = welcome("app@shop.test", "ann@shop.test")
        await aiosmtplib.send(
            message,
            hostname=sandbox.smtp_address[0],
            port=sandbox.smtp_address[1],
            start_tls=False,
        )
        got = await sandbox.wait_for(to="ann@shop.test", subject="Willkommen")
        assert got.links == ("https://app.test/verify?t=1",)
        assert [m.id for m in await sandbox.messages()] == [got.id]
        setting = await sandbox.chaos("shop.test").delay(ms=5)
        assert setting.mx is not None and setting.mx.delay_ms == 5
        with pytest.raises(TimeoutError, match=r"no message to nobody@shop\.test"):
            await sandbox.wait_for(to="nobody@shop.test", timeout=0.1)
        assert await sandbox.clear() == 2


async def test_async_view_of_a_threaded_sandbox(box):
    view = box.as_async()
    assert view.smtp_address == box.smtp_address
    assert view.ca_path == box.ca_path
    await aiosmtplib.send(
        welcome(), hostname=view.smtp_address[0], port=view.smtp_address[1], start_tls=False
    )
    got = await view.wait_for(to="ann@beta.test")
    assert (await view.message(got.id)).id == got.id
    await view.chaos("beta.test").ratelimit(per_minute=3)
    await view.reset()
    assert await view.messages(folder=None) == []
    with pytest.raises(RuntimeError, match="shares a running Sandbox"):
        await view.close()
