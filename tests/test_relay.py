"""The relay between fake domains, end to end: submission → DNS → MX server → mailbox."""

from __future__ import annotations

import smtplib
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from email import message_from_bytes
from pathlib import Path
from typing import ClassVar

import pytest

from sandbox.chaos import DnsFaultSetting, DomainChaos, MxFault
from sandbox.config import Config, load_config
from sandbox.store import Hop
from sandbox.testing import Message, Sandbox
from tests.conftest import PORT0, make_config

FAST = (0.2, 0.3)  # two quick retries, then give up


def fast(config: Config, schedule: tuple[float, ...] = FAST) -> Config:
    return replace(config, relay=replace(config.relay, retry_schedule=schedule))


@pytest.fixture
def relay_sandbox(config: Config) -> Iterator[Sandbox]:
    with Sandbox(config=fast(config)) as sandbox:
        yield sandbox


def send(sandbox: Sandbox, sender: str, rcpts: list[str], raw: bytes | None = None) -> str:
    raw = (
        raw
        or b"From: " + sender.encode() + b"\r\nSubject: hello\r\nMessage-ID: <m1@x>\r\n\r\nhi\r\n"
    )
    with smtplib.SMTP(*sandbox.smtp_address, timeout=10) as client:
        client.ehlo("app.local")
        client.mail(sender)
        for rcpt in rcpts:
            client.rcpt(rcpt)
        code, reply = client.data(raw)
    assert code == 250
    return reply.decode().split()[-1]


def chaos(sandbox: Sandbox, domain: str, setting: DomainChaos) -> None:
    sandbox.call(lambda runtime: runtime.set_chaos(domain, setting))


def relay_hops(sandbox: Sandbox, record: Message, count: int) -> list[Hop]:
    """The relay's hops for a copy, once there are ``count`` of them: the relay records
    its 250 just after the MX server stored the copy, so a test may look in between."""
    deadline = time.monotonic() + 5
    while True:
        hops = [h for h in sandbox.message(record.id).journey if h.step == "relay"]
        if len(hops) >= count or time.monotonic() > deadline:
            return hops
        time.sleep(0.02)


def steps(sandbox: Sandbox, record: Message) -> list[tuple[str, str]]:
    return [(h.step, h.outcome) for h in sandbox.message(record.id).journey]


def test_alpha_to_beta_two_hops_in_headers_and_journey(relay_sandbox: Sandbox) -> None:
    queue_id = send(relay_sandbox, "mikaela@alpha.test", ["larry@beta.test"])
    [record] = relay_sandbox.wait_for_count(1, to="larry@beta.test", folder=None)
    raw = record.raw
    received = message_from_bytes(raw).get_all("Received")
    assert len(received) == 2
    assert received[0].startswith("from mx.alpha.test (mx.alpha.test [127.0.0.11])")
    assert "by mx.beta.test (mail-sandbox) with ESMTP" in received[0]
    assert f"by submission.localhost (mail-sandbox) with ESMTP id {queue_id}" in received[1]
    journey = steps(relay_sandbox, record)
    assert journey[0] == ("submitted", "accepted")
    for hop in [
        ("queued", "queued"),
        ("dns", "mx"),
        ("dns", "address"),
        ("connect", "connected"),
        ("received", "accepted"),
        ("stored", "delivered"),
    ]:
        assert hop in journey, hop
    by_step = {h.step: h for h in record.journey}
    assert by_step["dns"].detail["query"] in ("beta.test MX", "mx.beta.test A")
    assert by_step["received"].detail["client"].startswith("127.0.0.11:")
    assert by_step["received"].detail["helo"] == "mx.alpha.test"


def test_recipients_across_three_domains_one_submission(relay_sandbox: Sandbox) -> None:
    rcpts = ["a1@alpha.test", "b1@beta.test", "b2@beta.test", "g1@gamma.test", "ceo@real.example"]
    send(relay_sandbox, "app@alpha.test", rcpts)
    inbox = {r.mailbox: r for r in relay_sandbox.wait_for_count(5, folder="INBOX")}
    assert set(inbox) == set(rcpts)
    assert inbox["ceo@real.example"].held
    # one SMTP transaction per domain: beta's two recipients share one stored message
    assert inbox["b1@beta.test"].stored_id == inbox["b2@beta.test"].stored_id
    assert len({inbox[r].stored_id for r in rcpts}) == 4
    # each copy's journey shows its own domain's route, not the others'
    domains = {h.detail.get("domain") for h in inbox["g1@gamma.test"].journey}
    assert "gamma.test" in domains and "beta.test" not in domains


def test_fallback_to_the_second_mx_when_the_first_is_dead(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[domains."alpha.test"]\n[domains."beta.test"]\n'
        'mx = [{ host = "dead.beta.test", preference = 5, addresses = ["127.0.0.250"] },'
        ' { host = "mx.beta.test", preference = 20 }]\n'
    )
    flags = {"data": str(tmp_path / "d.sqlite3"), **PORT0}
    with Sandbox(config=fast(load_config(config_file=str(path), env={}, flags=flags))) as sandbox:
        send(sandbox, "a@alpha.test", ["larry@beta.test"])
        [record] = sandbox.wait_for_count(1, to="larry@beta.test", folder=None)
        hops = record.journey
        connects = [(h.outcome, h.detail["host"]) for h in hops if h.step == "connect"]
        assert connects == [("failed", "dead.beta.test"), ("connected", "mx.beta.test")]
        [failed] = [h for h in hops if h.step == "connect" and h.outcome == "failed"]
        assert "connection refused" in failed.detail["error"]


def test_implicit_mx_and_null_mx(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[domains."alpha.test"]\n[domains."implicit.test"]\nmx = []\n'
        '[domains."nomail.test"]\nnull_mx = true\n'
    )
    flags = {"data": str(tmp_path / "d.sqlite3"), **PORT0}
    with Sandbox(config=fast(load_config(config_file=str(path), env={}, flags=flags))) as sandbox:
        send(sandbox, "a@alpha.test", ["x@implicit.test"])
        [record] = sandbox.wait_for_count(1, to="x@implicit.test", folder=None)
        assert ("dns", "implicit mx") in steps(sandbox, record)

        send(sandbox, "a@alpha.test", ["x@nomail.test"])
        [dsn] = sandbox.wait_for_count(1, to="a@alpha.test", folder="INBOX")
        assert dsn.subject.startswith("Undelivered Mail Returned to Sender")
        assert b"556 5.1.10" in dsn.raw and b"null MX" in dsn.raw
        assert sandbox.messages(to="x@nomail.test", folder=None) == []


def test_greylisting_delivers_on_the_retry(relay_sandbox: Sandbox) -> None:
    chaos(relay_sandbox, "beta.test", DomainChaos(MxFault("greylist", seconds=0.1)))
    send(relay_sandbox, "a@alpha.test", ["larry@beta.test"])
    [record] = relay_sandbox.wait_for_count(1, to="larry@beta.test", folder=None)
    relays = relay_hops(relay_sandbox, record, 2)
    assert [h.outcome for h in relays] == ["deferred", "delivered"]
    assert relays[0].detail["reply"].startswith("451 4.7.1 Greylisted")
    refused = [h for h in record.journey if h.outcome == "rcpt refused"]
    assert len(refused) == 1


def test_tempfail_then_give_up_bounces_with_the_original_headers(
    relay_sandbox: Sandbox,
) -> None:
    chaos(relay_sandbox, "beta.test", DomainChaos(MxFault("tempfail", code=452)))
    send(relay_sandbox, "mikaela@alpha.test", ["larry@beta.test"])
    [dsn] = relay_sandbox.wait_for_count(1, to="mikaela@alpha.test", folder="INBOX", timeout=15)
    raw = dsn.raw
    report = message_from_bytes(raw)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    parts = [p.get_content_type() for p in report.get_payload()]
    assert parts == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    assert b"Final-Recipient: rfc822; larry@beta.test" in raw
    assert b"Status: 4.7.1" in raw
    assert b"gave up after 3 attempts" in raw
    assert b"Message-ID: <m1@x>" in raw  # the original headers come back
    assert report["From"].startswith("Mail Delivery System <MAILER-DAEMON@")
    assert report["Auto-Submitted"] == "auto-replied"
    [sent] = relay_sandbox.messages(folder="Sent")
    relays = [h.outcome for h in sent.journey if h.step == "relay"]
    assert relays == ["deferred", "deferred", "bounced"]
    assert relay_sandbox.messages(to="larry@beta.test", folder=None) == []


def test_5xx_bounces_at_once(relay_sandbox: Sandbox) -> None:
    chaos(
        relay_sandbox, "beta.test", DomainChaos(MxFault("reject", code=550, message="no such user"))
    )
    send(relay_sandbox, "mikaela@alpha.test", ["larry@beta.test"])
    [dsn] = relay_sandbox.wait_for_count(1, to="mikaela@alpha.test", folder="INBOX")
    raw = dsn.raw
    assert b"Diagnostic-Code: smtp; 550 5.7.1 no such user" in raw
    assert b"Remote-MTA: dns; mx.beta.test" in raw
    [sent] = relay_sandbox.messages(folder="Sent")
    assert [h.outcome for h in sent.journey if h.step == "relay"] == ["bounced"]
    # the DSN itself travelled like any mail: from the submission host to alpha.test's MX
    assert ("bounce", "generated") in steps(relay_sandbox, dsn)
    assert ("stored", "delivered") in steps(relay_sandbox, dsn)


def test_bounce_of_a_sender_outside_the_sandbox_is_held(relay_sandbox: Sandbox) -> None:
    chaos(relay_sandbox, "beta.test", DomainChaos(MxFault("reject")))
    send(relay_sandbox, "app@myapp.example", ["larry@beta.test"])
    [dsn] = relay_sandbox.wait_for_count(1, to="app@myapp.example", folder=None)
    assert dsn.held and dsn.subject.startswith("Undelivered Mail")


def test_no_bounce_for_a_bounce(relay_sandbox: Sandbox) -> None:
    chaos(relay_sandbox, "beta.test", DomainChaos(MxFault("reject")))
    send(relay_sandbox, "<>", ["larry@beta.test"])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if any(h.step == "bounce" for r in relay_sandbox.messages(folder=None) for h in r.journey):
            break
        time.sleep(0.05)
    records = relay_sandbox.messages(folder=None)
    assert records == [], "a failed bounce makes no new message"
    hops = relay_sandbox.call(lambda runtime: runtime.store.journey(1))
    assert [(h.step, h.outcome) for h in hops if h.step in ("relay", "bounce")] == [
        ("relay", "bounced"),
        ("bounce", "not sent"),
    ]


def test_mail_loop_is_stopped(relay_sandbox: Sandbox) -> None:
    trace = b"".join(
        b"Received: from x by y.example; Mon, 23 Nov 2026 10:00:00 +0000\r\n" for _ in range(25)
    )
    raw = trace + b"From: a@alpha.test\r\nSubject: loop\r\n\r\nround and round\r\n"
    send(relay_sandbox, "a@alpha.test", ["larry@beta.test"], raw)
    [dsn] = relay_sandbox.wait_for_count(1, to="a@alpha.test", folder="INBOX")
    assert b"554 5.4.6 mail loop: the message has 26 Received: headers" in dsn.raw
    assert relay_sandbox.messages(to="larry@beta.test", folder=None) == []


class ConnectWatch:
    """Every socket connect this process makes, seen through Python's audit hooks."""

    addresses: ClassVar[list[object]] = []
    installed: ClassVar[bool] = False

    @classmethod
    def install(cls) -> None:
        if not cls.installed:
            sys.addaudithook(cls._hook)
            cls.installed = True

    @classmethod
    def _hook(cls, event: str, args: tuple[object, ...]) -> None:
        if event == "socket.connect":
            cls.addresses.append(args[1])


def test_held_mail_never_opens_a_socket_or_asks_dns(relay_sandbox: Sandbox) -> None:
    ConnectWatch.install()
    ConnectWatch.addresses.clear()
    send(relay_sandbox, "mikaela@alpha.test", ["ceo@realcompany.com", "larry@beta.test"])
    relay_sandbox.wait_for_count(1, to="larry@beta.test", folder=None)
    [held] = relay_sandbox.messages(to="ceo@realcompany.com", folder=None)
    assert held.held
    # the only connections: this test's client to submission, the relay to beta's MX
    # server, and DNS to the stub; all on loopback, none for realcompany.com
    hosts = {addr[0] for addr in ConnectWatch.addresses if isinstance(addr, tuple)}
    assert hosts <= {"127.0.0.1", "127.0.0.12"}, hosts
    queries = [e["qname"].lower() for e in relay_sandbox.journal("dns.query")]
    assert queries and not any("realcompany" in q for q in queries)
    assert ("stored", "held") in steps(relay_sandbox, held)


def test_a_dns_fault_defers_rather_than_bounces(config: Config) -> None:
    with Sandbox(config=fast(config, (0.3, 0.3, 0.3, 30.0))) as sandbox:
        chaos(sandbox, "beta.test", DomainChaos(dns=DnsFaultSetting("servfail")))
        send(sandbox, "a@alpha.test", ["larry@beta.test"])
        deadline = time.monotonic() + 5
        pending = []
        while time.monotonic() < deadline:
            pending = sandbox.call(lambda runtime: runtime.store.pending_deliveries())
            if pending and pending[0].attempts >= 1:
                break
            time.sleep(0.05)
        assert pending[0].state == "deferred"
        assert pending[0].last_reply.startswith("451 4.4.3 beta.test: DNS lookup failed (SERVFAIL)")
        chaos(sandbox, "beta.test", DomainChaos())
        sandbox.wait_for_count(1, to="larry@beta.test", folder=None)
        assert sandbox.messages(to="a@alpha.test", folder="INBOX") == []  # no bounce


def test_restart_with_pending_deliveries_delivers_them(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[domains."alpha.test"]\n[domains."beta.test"]\nchaos = { mode = "tempfail" }\n'
    )
    flags = {"data": str(tmp_path / "sandbox.sqlite3"), **PORT0}
    failing = fast(load_config(config_file=str(path), env={}, flags=flags), (0.2, 60.0))
    with Sandbox(config=failing, data=failing.data) as sandbox:
        send(sandbox, "a@alpha.test", ["larry@beta.test"])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            pending = sandbox.call(lambda runtime: runtime.store.pending_deliveries())
            if pending and pending[0].attempts >= 2:
                break
            time.sleep(0.05)
        assert pending[0].state == "deferred"
    healthy = fast(make_config(tmp_path), (0.2, 60.0))  # same data file, no chaos
    with Sandbox(config=healthy, data=healthy.data) as sandbox:
        sandbox.call(lambda runtime: runtime.store.retry_now())
        [record] = sandbox.wait_for_count(1, to="larry@beta.test", folder=None)
        outcomes = [h.outcome for h in relay_hops(sandbox, record, 3)]
        assert outcomes == ["deferred", "deferred", "delivered"]


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (MxFault("reject", stage="connect"), "554 mx.beta.test beta.test is set to reject"),
        (MxFault("reject", stage="mail", code=553), "553 5.7.1"),
        (MxFault("tempfail", stage="data"), "451 4.7.1"),
        (MxFault("disconnect", stage="rcpt"), "connection lost"),
    ],
)
def test_mx_faults_at_each_stage(relay_sandbox: Sandbox, fault: MxFault, expected: str) -> None:
    chaos(relay_sandbox, "beta.test", DomainChaos(fault))
    send(relay_sandbox, "a@alpha.test", ["larry@beta.test"])
    deadline = time.monotonic() + 5
    reply = ""
    while time.monotonic() < deadline and not reply:
        for record in relay_sandbox.messages(folder="Sent"):
            relays = [h for h in record.journey if h.step == "relay"]
            reply = relays[0].detail["reply"] if relays else ""
        time.sleep(0.05)
    assert expected in reply
    assert relay_sandbox.messages(to="larry@beta.test", folder=None) == []


def test_rate_limit_421_after_n_messages(relay_sandbox: Sandbox) -> None:
    chaos(relay_sandbox, "beta.test", DomainChaos(MxFault("ratelimit", per_minute=2)))
    host, port = relay_sandbox.mx_addresses["beta.test"]
    codes = []
    for _ in range(3):
        with smtplib.SMTP(host, port, timeout=10) as client:
            client.ehlo("x")
            codes.append(client.mail("a@alpha.test")[0])
            if codes[-1] == 250:
                client.rcpt("larry@beta.test")
                client.data(b"Subject: r\r\n\r\nx\r\n")
    assert codes == [250, 250, 421]


def test_delay_slows_every_reply(relay_sandbox: Sandbox) -> None:
    chaos(relay_sandbox, "beta.test", DomainChaos(MxFault("delay", delay_ms=150)))
    host, port = relay_sandbox.mx_addresses["beta.test"]
    with smtplib.SMTP(host, port, timeout=10) as client:
        started = time.monotonic()
        client.ehlo("x")
        client.mail("a@alpha.test")
        assert time.monotonic() - started >= 0.3


def test_relay_never_connects_outside_the_machine(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[domains."alpha.test"]\n[domains."beta.test"]\n'
        'mx = [{ host = "out.beta.test", preference = 5, addresses = ["192.0.2.10"] },'
        ' { host = "mx.beta.test", preference = 20 }]\n'
    )
    flags = {"data": str(tmp_path / "sandbox.sqlite3"), **PORT0}
    config = load_config(config_file=str(path), env={}, flags=flags)
    ConnectWatch.install()
    ConnectWatch.addresses.clear()
    with Sandbox(config=fast(make_config(tmp_path, domains=config.domains))) as sandbox:
        send(sandbox, "a@alpha.test", ["larry@beta.test"])
        [record] = sandbox.wait_for_count(1, to="larry@beta.test", folder=None)
        refused = [h for h in record.journey if h.outcome == "refused"]
        assert refused[0].detail["address"] == "192.0.2.10"
        assert "never connects outside the machine" in refused[0].detail["error"]
    assert not any(isinstance(a, tuple) and a[0] == "192.0.2.10" for a in ConnectWatch.addresses)
