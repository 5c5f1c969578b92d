"""DSN (RFC 3461) end to end: parameters at submission, carried through the relay queue,
reports (RFC 3464) for success, delay and failure as NOTIFY asks, RET, ENVID, ORCPT."""

from __future__ import annotations

import smtplib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from email import message_from_bytes

import pytest

from sandbox.chaos import DomainChaos, MxFault
from sandbox.config import Config
from sandbox.testing import Message, Sandbox
from tests.conftest import require_binary

MIKAELA = "mikaela@alpha.test"
LARRY = "larry@beta.test"
BODY = b"From: mikaela@alpha.test\r\nSubject: report me\r\nMessage-ID: <d1@x>\r\n\r\nthe body\r\n"


@pytest.fixture
def box(config: Config) -> Iterator[Sandbox]:
    fast = replace(config, relay=replace(config.relay, retry_schedule=(0.3, 0.3)))
    with Sandbox(config=fast) as sandbox:
        yield sandbox


def submit(
    sandbox: Sandbox,
    mail_options: list[str],
    rcpt_options: list[str],
    rcpts: tuple[str, ...] = (LARRY,),
) -> None:
    with smtplib.SMTP(*sandbox.smtp_address, timeout=10) as client:
        client.ehlo("app.test")
        assert client.has_extn("dsn")
        code, _ = client.mail(MIKAELA, mail_options)
        assert code == 250
        for rcpt in rcpts:
            assert client.rcpt(rcpt, rcpt_options)[0] == 250
        assert client.data(BODY)[0] == 250


def reports(sandbox: Sandbox, count: int, timeout: float = 10) -> list[Message]:
    return sandbox.wait_for_count(count, to=MIKAELA, folder="INBOX", timeout=timeout)


def no_more_reports(sandbox: Sandbox, expected: int) -> None:
    """After the relay has finished with every delivery, exactly ``expected`` arrived."""
    deadline = time.monotonic() + 10
    while sandbox.call(lambda runtime: runtime.store.pending_deliveries()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert len(sandbox.messages(to=MIKAELA, folder="INBOX")) == expected


def test_notify_success_reports_the_delivery(box: Sandbox) -> None:
    submit(
        box, ["RET=HDRS", "ENVID=order+2B42"], ["NOTIFY=SUCCESS", "ORCPT=rfc822;Larry@beta.test"]
    )
    [report] = reports(box, 1)
    raw = report.raw
    message = message_from_bytes(raw)
    assert message["Subject"] == "Successful Mail Delivery Report: report me"
    parts = [p.get_content_type() for p in message.get_payload()]
    assert parts == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    assert b"Original-Envelope-Id: order+42\r\n" in raw
    assert b"Original-Recipient: rfc822; Larry@beta.test\r\n" in raw
    assert b"Final-Recipient: rfc822; larry@beta.test\r\nAction: delivered\r\nStatus: 2.0.0" in raw
    assert b"Message-ID: <d1@x>" in raw and b"the body" not in raw  # RET=HDRS: headers only
    assert box.wait_for_count(1, to=LARRY, folder=None)  # and the message itself arrived
    no_more_reports(box, 1)


def test_notify_delay_reports_once_then_failure_when_it_gives_up(box: Sandbox) -> None:
    box.call(lambda runtime: runtime.set_chaos("beta.test", DomainChaos(MxFault("tempfail"))))
    submit(box, ["RET=FULL"], ["NOTIFY=DELAY,FAILURE"])
    delayed, failed = reports(box, 2, timeout=15)
    delay_raw, fail_raw = delayed.raw, failed.raw
    assert message_from_bytes(delay_raw)["Subject"].startswith("Delayed Mail")
    assert b"Action: delayed\r\nStatus: 4." in delay_raw and b"Will-Retry-Until: " in delay_raw
    assert b"Action: failed\r\nStatus: 4." in fail_raw
    # RET=FULL: the whole message comes back as message/rfc822
    returned = message_from_bytes(fail_raw).get_payload()[2]
    assert returned.get_content_type() == "message/rfc822"
    assert b"the body" in fail_raw
    no_more_reports(box, 2)


def test_notify_never_suppresses_the_bounce(box: Sandbox) -> None:
    box.call(lambda runtime: runtime.set_chaos("beta.test", DomainChaos(MxFault("reject"))))
    submit(box, [], ["NOTIFY=NEVER"])
    no_more_reports(box, 0)
    [sent] = box.messages(folder="Sent")
    assert [h.outcome for h in sent.journey if h.step == "relay"] == ["bounced"]


def test_without_notify_only_failures_are_reported(box: Sandbox) -> None:
    submit(box, [], [])
    box.wait_for_count(1, to=LARRY, folder=None)
    no_more_reports(box, 0)
    box.call(lambda runtime: runtime.set_chaos("beta.test", DomainChaos(MxFault("reject"))))
    submit(box, [], [])
    [bounce] = reports(box, 1)
    assert b"Action: failed" in bounce.raw


def test_notify_per_recipient(box: Sandbox) -> None:
    """Each recipient's NOTIFY decides for that recipient alone."""
    with smtplib.SMTP(*box.smtp_address, timeout=10) as client:
        client.ehlo("app.test")
        client.mail(MIKAELA)
        client.rcpt(LARRY, ["NOTIFY=SUCCESS"])
        client.rcpt("ops@beta.test", ["NOTIFY=NEVER"])
        client.data(BODY)
    [report] = reports(box, 1)
    raw = report.raw
    assert b"Final-Recipient: rfc822; larry@beta.test" in raw
    assert b"ops@beta.test" not in raw.partition(b"message/delivery-status")[2].split(b"--=")[0]
    no_more_reports(box, 1)


def test_swaks_with_dsn_parameters(box: Sandbox) -> None:
    """swaks 20201014 has no --dsn options and writes MAIL FROM:<ADDRESS> itself, so the
    parameters ride inside --from/--to (the last one ends in swaks' closing '>', which is
    valid xtext)."""
    host, port = box.smtp_address
    done = subprocess.run(
        [
            require_binary("swaks"),
            "--server",
            f"{host}:{port}",
            "--from",
            f"{MIKAELA}> RET=HDRS ENVID=swaks-1",
            "--to",
            f"{LARRY}> NOTIFY=SUCCESS ORCPT=rfc822;{LARRY}",
            "--header",
            "Subject: via swaks",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "250-DSN" in done.stdout
    assert f" -> RCPT TO:<{LARRY}> NOTIFY=SUCCESS ORCPT=rfc822;{LARRY}>" in done.stdout
    [report] = reports(box, 1)
    raw = report.raw
    assert b"Action: delivered" in raw and b"Original-Envelope-Id: swaks-1>" in raw
    assert b"Subject: via swaks" in raw
