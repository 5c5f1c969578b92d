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
from sandbox.store import MessageRecord
from tests.conftest import require_binary
from tests.helpers import (
    ThreadedSandbox,
    threaded_sandbox,  # noqa: F401 - the old sandbox fixture, until converted
)

MIKAELA = "mikaela@alpha.test"
LARRY = "larry@beta.test"
BODY = b"From: mikaela@alpha.test\r\nSubject: report me\r\nMessage-ID: <d1@x>\r\n\r\nthe body\r\n"


@pytest.fixture
def box(config: Config) -> Iterator[ThreadedSandbox]:
    fast = replace(config, relay=replace(config.relay, retry_schedule=(0.3, 0.3)))
    with ThreadedSandbox(fast) as sandbox:
        yield sandbox


def submit(
    sandbox: ThreadedSandbox,
    mail_options: list[str],
    rcpt_options: list[str],
    rcpts: tuple[str, ...] = (LARRY,),
) -> None:
    with smtplib.SMTP(*sandbox.smtp, timeout=10) as client:
        client.ehlo("app.test")
        assert client.has_extn("dsn")
        code, _ = client.mail(MIKAELA, mail_options)
        assert code == 250
        for rcpt in rcpts:
            assert client.rcpt(rcpt, rcpt_options)[0] == 250
        assert client.data(BODY)[0] == 250


def reports(sandbox: ThreadedSandbox, count: int, timeout: float = 10) -> list[MessageRecord]:
    return sandbox.wait_for(count, to=MIKAELA, folder="INBOX", timeout=timeout)


def no_more_reports(sandbox: ThreadedSandbox, expected: int) -> None:
    """After the relay has finished with every delivery, exactly ``expected`` arrived."""
    deadline = time.monotonic() + 10
    while sandbox.call(sandbox.runtime.store.pending_deliveries):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert len(sandbox.messages(to=MIKAELA, folder="INBOX")) == expected


def test_notify_success_reports_the_delivery(box: ThreadedSandbox) -> None:
    submit(
        box, ["RET=HDRS", "ENVID=order+2B42"], ["NOTIFY=SUCCESS", "ORCPT=rfc822;Larry@beta.test"]
    )
    [report] = reports(box, 1)
    raw = box.raw(report)
    message = message_from_bytes(raw)
    assert message["Subject"] == "Successful Mail Delivery Report: report me"
    parts = [p.get_content_type() for p in message.get_payload()]
    assert parts == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    assert b"Original-Envelope-Id: order+42\r\n" in raw
    assert b"Original-Recipient: rfc822; Larry@beta.test\r\n" in raw
    assert b"Final-Recipient: rfc822; larry@beta.test\r\nAction: delivered\r\nStatus: 2.0.0" in raw
    assert b"Message-ID: <d1@x>" in raw and b"the body" not in raw  # RET=HDRS: headers only
    assert box.wait_for(to=LARRY)  # and the message itself arrived
    no_more_reports(box, 1)


def test_notify_delay_reports_once_then_failure_when_it_gives_up(box: ThreadedSandbox) -> None:
    box.call(lambda: box.runtime.set_chaos("beta.test", DomainChaos(MxFault("tempfail"))))
    submit(box, ["RET=FULL"], ["NOTIFY=DELAY,FAILURE"])
    delayed, failed = reports(box, 2, timeout=15)
    delay_raw, fail_raw = box.raw(delayed), box.raw(failed)
    assert message_from_bytes(delay_raw)["Subject"].startswith("Delayed Mail")
    assert b"Action: delayed\r\nStatus: 4." in delay_raw and b"Will-Retry-Until: " in delay_raw
    assert b"Action: failed\r\nStatus: 4." in fail_raw
    # RET=FULL: the whole message comes back as message/rfc822
    returned = message_from_bytes(fail_raw).get_payload()[2]
    assert returned.get_content_type() == "message/rfc822"
    assert b"the body" in fail_raw
    no_more_reports(box, 2)


def test_notify_never_suppresses_the_bounce(box: ThreadedSandbox) -> None:
    box.call(lambda: box.runtime.set_chaos("beta.test", DomainChaos(MxFault("reject"))))
    submit(box, [], ["NOTIFY=NEVER"])
    no_more_reports(box, 0)
    [sent] = box.messages(folder="Sent")
    assert [h.outcome for h in box.journey(sent) if h.step == "relay"] == ["bounced"]


def test_without_notify_only_failures_are_reported(box: ThreadedSandbox) -> None:
    submit(box, [], [])
    box.wait_for(to=LARRY)
    no_more_reports(box, 0)
    box.call(lambda: box.runtime.set_chaos("beta.test", DomainChaos(MxFault("reject"))))
    submit(box, [], [])
    [bounce] = reports(box, 1)
    assert b"Action: failed" in box.raw(bounce)


def test_notify_per_recipient(box: ThreadedSandbox) -> None:
    """Each recipient's NOTIFY decides for that recipient alone."""
    with smtplib.SMTP(*box.smtp, timeout=10) as client:
        client.ehlo("app.test")
        client.mail(MIKAELA)
        client.rcpt(LARRY, ["NOTIFY=SUCCESS"])
        client.rcpt("ops@beta.test", ["NOTIFY=NEVER"])
        client.data(BODY)
    [report] = reports(box, 1)
    raw = box.raw(report)
    assert b"Final-Recipient: rfc822; larry@beta.test" in raw
    assert b"ops@beta.test" not in raw.partition(b"message/delivery-status")[2].split(b"--=")[0]
    no_more_reports(box, 1)


def test_swaks_with_dsn_parameters(box: ThreadedSandbox) -> None:
    """swaks 20201014 has no --dsn options and writes MAIL FROM:<ADDRESS> itself, so the
    parameters ride inside --from/--to (the last one ends in swaks' closing '>', which is
    valid xtext)."""
    host, port = box.smtp
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
    raw = box.raw(report)
    assert b"Action: delivered" in raw and b"Original-Envelope-Id: swaks-1>" in raw
    assert b"Subject: via swaks" in raw
