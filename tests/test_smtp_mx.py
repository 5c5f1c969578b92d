"""Each fake domain's MX server: its own address, its own domain only."""

from __future__ import annotations

import smtplib

import pytest

from sandbox.testing import Sandbox
from tests import statuscodes as S


def test_each_domain_has_its_own_loopback_address(sandbox: Sandbox) -> None:
    assert [sandbox.mx_addresses[d][0] for d in ("alpha.test", "beta.test", "gamma.test")] == [
        "127.0.0.11",
        "127.0.0.12",
        "127.0.0.13",
    ]


def test_mx_accepts_its_own_domain_and_refuses_to_relay(sandbox: Sandbox) -> None:
    host, port = sandbox.mx_addresses["beta.test"]
    with smtplib.SMTP(host, port, timeout=10) as client:
        code, greeting = client.ehlo("mx.alpha.test")
        assert code == S.OK and greeting.startswith(b"mx.beta.test")
        client.mail("mikaela@alpha.test")
        code, _ = client.rcpt("larry@beta.test")
        assert code == S.OK
        code, reply = client.rcpt("someone@gamma.test")
        assert code == S.RELAY_DENIED
        assert reply.startswith(b"5.7.1 Relaying denied")
        code, reply = client.rcpt("ceo@realcompany.com")
        assert code == S.RELAY_DENIED
        code, _ = client.data(b"Subject: via mx\r\n\r\nbody\r\n")
        assert code == S.OK
    [record] = sandbox.messages(folder=None)
    assert (record.mailbox, record.folder, record.held) == ("larry@beta.test", "INBOX", False)
    raw = record.raw
    # RFC 5321 §4.4: final delivery puts the envelope sender first, then the trace.
    assert raw.startswith(
        b"Return-Path: <mikaela@alpha.test>\r\n"
        b"Received: from mx.alpha.test (localhost [127.0.0.1])\r\n\tby mx.beta.test"
    )
    hops = record.journey
    # 127.0.0.1 is not in alpha.test's SPF, and nothing signed this message.
    assert [(h.step, h.outcome) for h in hops] == [
        ("received", "accepted"),
        ("authenticated", "spf=fail dkim=none dmarc=none"),
        ("stored", "delivered"),
    ]
    assert hops[0].detail["server"] == "mx.beta.test"


def test_mx_with_only_foreign_recipients_has_nothing_to_accept(sandbox: Sandbox) -> None:
    host, port = sandbox.mx_addresses["gamma.test"]
    with smtplib.SMTP(host, port, timeout=10) as client:
        client.ehlo("x")
        client.mail("a@alpha.test")
        assert client.rcpt("b@beta.test")[0] == S.RELAY_DENIED
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.data(b"Subject: x\r\n\r\nx\r\n")
        assert refused.value.smtp_code == S.BAD_SEQUENCE
    assert sandbox.messages(folder=None) == []
