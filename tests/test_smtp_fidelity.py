"""Issue 17 SMTP points over real sockets: strict paths, SMTPUTF8, control characters,
Return-Path at final delivery, Date/Message-ID at submission, BDAT, DSN parameters."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import pytest

from tests.conftest import make_config
from tests.helpers import ThreadedSandbox

LARRY = "larry@beta.test"
MESSAGE = b"From: app@alpha.test\r\nTo: larry@beta.test\r\nSubject: hi\r\n\r\nhello\r\n"


class Raw:
    """A line-at-a-time SMTP client: send a command, read its whole reply."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=10)
        self.reader = self.sock.makefile("rb")
        self.greeting = self.reply()

    def reply(self) -> bytes:
        lines = [self.reader.readline()]
        while lines[-1][3:4] == b"-":
            lines.append(self.reader.readline())
        return b"".join(lines)

    def send(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


@pytest.fixture
def raw(sandbox: ThreadedSandbox) -> Raw:
    client = Raw(sandbox.smtp)
    assert client.send(b"EHLO app.test").startswith(b"250")
    yield client  # type: ignore[misc]
    client.close()


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        (b"MAIL FROM:<bad", b"501 5.1.7 Bad sender address syntax: no closing '>'"),
        (b"MAIL FROM:app@alpha.test", b"501 5.1.7 Bad sender address syntax: the address must"),
        (b"MAIL FROM:<app@>", b"501 5.1.7 Bad sender address syntax: <app@> is not an address"),
        (
            b"MAIL FROM:<a\x00pp@alpha.test>",
            b"501 5.1.7 Bad sender address syntax: it contains a NUL",
        ),
        (b"MAIL FROM:<\xc3\xa9l\xc3\xa8ve@alpha.test>", b"553 5.6.7 The sender"),
        (b"MAIL FROM:<app@alpha.test> RET=SOME", b"501 5.5.4 RET is FULL or HDRS"),
        (b"MAIL FROM:<app@alpha.test> BODY=9BIT", b"501 5.5.4 BODY is one of"),
    ],
)
def test_strict_mail_from(raw: Raw, command: bytes, reply: bytes) -> None:
    answer = raw.send(command)
    assert answer.startswith(reply), answer
    assert raw.send(b"MAIL FROM:<app@alpha.test>").startswith(b"250 2.1.0")  # session goes on


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        (b"RCPT TO:bob@beta.test", b"501 5.1.3 Bad recipient address syntax: the address must"),
        (b"RCPT TO:<bob@beta.test", b"501 5.1.3 Bad recipient address syntax: no closing '>'"),
        (b"RCPT TO:<bob@beta..test>", b"501 5.1.3 Bad recipient address syntax: <bob@beta..test>"),
        (
            b"RCPT TO:<bob\x00@beta.test>",
            b"501 5.1.3 Bad recipient address syntax: it contains a NUL",
        ),
        (b"RCPT TO:<bob\x07@beta.test>", b"501 5.1.3 Bad recipient address syntax: it contains a"),
        (
            b"RCPT TO:<j\xc3\xb6rg@beta.test>",
            b"553 5.6.7 The recipient <j\xc3\xb6rg@beta.test> is not ASCII",
        ),
        (b"RCPT TO:<bob@beta.test> NOTIFY=SOMETIMES", b"501 5.5.4 NOTIFY is NEVER"),
        (b"RCPT TO:<bob@beta.test> FOO=1", b"555 5.5.4 RCPT TO parameter FOO"),
    ],
)
def test_strict_rcpt_to(raw: Raw, command: bytes, reply: bytes) -> None:
    assert raw.send(b"MAIL FROM:<app@alpha.test>").startswith(b"250")
    answer = raw.send(command)
    assert answer.startswith(reply), answer


def test_a_nul_in_a_recipient_is_refused_there_and_data_then_works(
    sandbox: ThreadedSandbox, raw: Raw
) -> None:
    """Issue 12: the NUL used to get 250, then every DATA got 451 forever."""
    assert raw.send(b"MAIL FROM:<app@alpha.test>").startswith(b"250")
    assert raw.send(b"RCPT TO:<evil\x00@beta.test>").startswith(b"501 5.1.3")
    assert raw.send(b"RCPT TO:<larry@beta.test>").startswith(b"250")
    assert raw.send(b"DATA").startswith(b"354")
    assert raw.send(MESSAGE + b".").startswith(b"250 2.0.0")
    assert [r.subject for r in sandbox.wait_for(to=LARRY)] == ["hi"]


def test_utf8_addresses_with_smtputf8(sandbox: ThreadedSandbox, raw: Raw) -> None:
    assert raw.send("MAIL FROM:<élève@alpha.test> SMTPUTF8".encode()).startswith(b"250")
    assert raw.send("RCPT TO:<jörg@beta.test>".encode()).startswith(b"250")
    assert raw.send(b"DATA").startswith(b"354")
    assert raw.send(MESSAGE + b".").startswith(b"250 2.0.0")


def test_source_routes_and_postmaster_are_accepted(raw: Raw) -> None:
    """RFC 5321 §4.1.1.3 and Appendix C: a source route is accepted and ignored."""
    assert raw.send(b"MAIL FROM:<@relay.test:app@alpha.test>").startswith(b"250")
    assert raw.send(b'RCPT TO:<"larry b"@beta.test>').startswith(b"250")


def test_lenient_mode_takes_paths_without_brackets(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    config = replace(config, smtp=replace(config.smtp, strict=False))
    with ThreadedSandbox(config) as sandbox:
        client = Raw(sandbox.smtp)
        try:
            client.send(b"EHLO app.test")
            assert client.send(b"MAIL FROM:app@alpha.test").startswith(b"250")
            assert client.send(b"RCPT TO:larry@beta.test").startswith(b"250")
            # Control characters stay refused: nothing could store or deliver them.
            assert client.send(b"RCPT TO:<x\x00@beta.test>").startswith(b"501 5.1.3")
            assert client.send(b"DATA").startswith(b"354")
            assert client.send(MESSAGE + b".").startswith(b"250 2.0.0")
        finally:
            client.close()
        assert sandbox.wait_for(to=LARRY)
