"""Issue 17 SMTP points over real sockets: strict paths, SMTPUTF8, control characters,
Return-Path at final delivery, Date/Message-ID at submission, BDAT, DSN parameters."""

from __future__ import annotations

import asyncio
import email
import email.utils
import smtplib
import socket
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from sandbox.testing import Sandbox
from tests.conftest import make_config, require_binary

LARRY = "larry@beta.test"
COMPLETE = b"Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <t@alpha.test>\r\n"
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
def raw(sandbox: Sandbox) -> Raw:
    client = Raw(sandbox.smtp_address)
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
    sandbox: Sandbox, raw: Raw
) -> None:
    """Issue 12: the NUL used to get 250, then every DATA got 451 forever."""
    assert raw.send(b"MAIL FROM:<app@alpha.test>").startswith(b"250")
    assert raw.send(b"RCPT TO:<evil\x00@beta.test>").startswith(b"501 5.1.3")
    assert raw.send(b"RCPT TO:<larry@beta.test>").startswith(b"250")
    assert raw.send(b"DATA").startswith(b"354")
    assert raw.send(MESSAGE + b".").startswith(b"250 2.0.0")
    assert [r.subject for r in sandbox.wait_for_count(1, to=LARRY, folder=None)] == ["hi"]


def test_utf8_addresses_with_smtputf8(sandbox: Sandbox, raw: Raw) -> None:
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
    with Sandbox(config=config) as sandbox:
        client = Raw(sandbox.smtp_address)
        try:
            client.send(b"EHLO app.test")
            assert client.send(b"MAIL FROM:app@alpha.test").startswith(b"250")
            assert client.send(b"RCPT TO:larry@beta.test").startswith(b"250")
            assert client.send("RCPT TO:<jörg@beta.test>".encode()).startswith(b"250")
            # Control characters stay refused: nothing could store or deliver them.
            assert client.send(b"RCPT TO:<x\x00@beta.test>").startswith(b"501 5.1.3")
            assert client.send(b"DATA").startswith(b"354")
            assert client.send(MESSAGE + b".").startswith(b"250 2.0.0")
        finally:
            client.close()
        assert sandbox.wait_for_count(1, to=LARRY, folder=None)


# --- Return-Path at final delivery, Date and Message-ID at submission ----------------------


def submit(sandbox: Sandbox, sender: str, rcpts: list[str], data: bytes) -> None:
    with smtplib.SMTP(*sandbox.smtp_address, timeout=10) as client:
        client.sendmail(sender, rcpts, data)


def test_return_path_at_final_delivery_seen_by_fetchmail(sandbox: Sandbox, tmp_path: Path) -> None:
    """RFC 5321 §4.4: fetchmail takes the sender from Return-Path (%F), not <unknown>."""
    fetchmail = require_binary("fetchmail")
    submit(sandbox, "mikaela@alpha.test", [LARRY, "ceo@realcompany.com"], MESSAGE)
    [delivered] = sandbox.wait_for_count(1, to=LARRY, folder=None)
    assert delivered.raw.startswith(b"Return-Path: <mikaela@alpha.test>\r\nReceived: ")
    [held] = sandbox.wait_for_count(1, to="ceo@realcompany.com", folder=None)
    assert held.raw.startswith(b"Return-Path: <mikaela@alpha.test>\r\nReceived: ")
    [sent] = sandbox.messages(folder="Sent")
    assert not sent.raw.startswith(b"Return-Path:")  # not a delivery
    for user in (LARRY, "ceo@realcompany.com"):
        host, port = sandbox.pop3_address
        out = tmp_path / user
        out.mkdir()
        script = out / "mda.sh"
        script.write_text(f'printf "%s\\n" "$1" > "{out}/sender"; cat > "{out}/message"\n')
        rc = out / "fetchmailrc"
        rc.write_text(
            f'poll {host} service {port} protocol POP3 user "{user}" password "x"'
            f' sslproto "" keep mda "/bin/sh {script} %F"\n'
        )
        rc.chmod(0o600)
        done = subprocess.run(
            [fetchmail, "-f", str(rc), "--nodetach", "--nosyslog"],
            capture_output=True,
            text=True,
            timeout=60,
            env={"HOME": str(out), "PATH": "/usr/bin:/bin"},
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert (out / "sender").read_text() == "mikaela@alpha.test\n"
        assert (out / "message").read_bytes().startswith(b"Return-Path: <mikaela@alpha.test>")


def test_bounces_carry_a_null_return_path(sandbox: Sandbox) -> None:
    submit(sandbox, "<>", [LARRY], MESSAGE)
    [delivered] = sandbox.wait_for_count(1, to=LARRY, folder=None)
    assert delivered.raw.startswith(b"Return-Path: <>\r\n")


def test_submission_adds_date_and_message_id(sandbox: Sandbox) -> None:
    """RFC 6409 §8.2, §8.3, so SENTSINCE and ENVELOPE have a date to work with."""
    submit(sandbox, "app@alpha.test", [LARRY], b"Subject: bare\r\n\r\nno date, no id\r\n")
    [record] = sandbox.wait_for_count(1, to=LARRY, folder=None)
    assert record.date is not None and record.message_id is not None
    assert record.message_id.endswith("@submission.localhost>")
    message = email.message_from_bytes(record.raw)
    assert email.utils.parsedate_to_datetime(message["Date"]).tzinfo is not None
    assert message.get_payload() == "no date, no id\r\n"


def test_submission_keeps_a_date_and_message_id_it_was_given(sandbox: Sandbox) -> None:
    data = b"Subject: x\r\nDATE: Mon, 07 Dec 2026 10:00:00 +0000\r\nmessage-id: <m@a>\r\n\r\nb\r\n"
    submit(sandbox, "app@alpha.test", [LARRY], data)
    [record] = sandbox.wait_for_count(1, to=LARRY, folder=None)
    assert record.raw.endswith(data)


def test_the_mx_server_adds_no_date_or_message_id(sandbox: Sandbox) -> None:
    """Only a submission server completes messages (RFC 6409 §8); an MX keeps them."""
    with smtplib.SMTP(*sandbox.mx_addresses["beta.test"], timeout=10) as client:
        client.sendmail("app@alpha.test", [LARRY], b"Subject: bare\r\n\r\nbody\r\n")
    [record] = sandbox.wait_for_count(1, to=LARRY, folder=None)
    assert record.raw.endswith(b"\r\nSubject: bare\r\n\r\nbody\r\n")


# --- BDAT (RFC 3030) ----------------------------------------------------------------------


def test_bdat_in_a_raw_session(sandbox: Sandbox, raw: Raw) -> None:
    """The chunks are read as bytes: a chunk holding "QUIT\\r\\n" or a lone dot is data."""
    ehlo = raw.send(b"EHLO app.test")
    assert b"250-CHUNKING" in ehlo and b"250-BINARYMIME" in ehlo
    first = b"From: app@alpha.test\r\nSubject: chunks\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\n"
    first += b"Message-ID: <c@alpha.test>\r\n\r\nQUIT\r\n.\r\n"
    second = b"RSET\r\nno dot-stuffing, no end marker: \x00\xff binary"
    assert raw.send(b"MAIL FROM:<app@alpha.test> BODY=BINARYMIME").startswith(b"250")
    assert raw.send(b"RCPT TO:<larry@beta.test>").startswith(b"250")
    raw.sock.sendall(b"BDAT %d\r\n" % len(first) + first)
    assert raw.reply() == b"250 2.0.0 %d octets received\r\n" % len(first)
    raw.sock.sendall(b"BDAT %d LAST\r\n" % len(second) + second)
    assert raw.reply().startswith(b"250 2.0.0 OK: queued as ")
    sandbox.wait_for_count(1, to=LARRY, folder=None)
    [sent] = sandbox.messages(folder="Sent")  # as the submission server stored it
    assert sent.raw.endswith(first + second)
    assert raw.send(b"NOOP").startswith(b"250")  # the session goes on


def test_bdat_pipelined_with_an_empty_last_chunk(sandbox: Sandbox, raw: Raw) -> None:
    body = b"Subject: piped\r\n" + COMPLETE + b"\r\nhello\r\n"
    raw.sock.sendall(
        b"MAIL FROM:<app@alpha.test>\r\nRCPT TO:<larry@beta.test>\r\n"
        + b"BDAT %d\r\n" % len(body)
        + body
        + b"BDAT 0 LAST\r\n"
    )
    replies = [raw.reply() for _ in range(4)]
    assert [r[:3] for r in replies] == [b"250"] * 4, replies
    [record] = sandbox.wait_for_count(1, to=LARRY, folder=None)
    assert record.raw.endswith(body)


def test_bdat_out_of_sequence_and_oversize(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    config = replace(config, smtp=replace(config.smtp, max_message_size=100))
    with Sandbox(config=config) as sandbox:
        raw = Raw(sandbox.smtp_address)
        try:
            raw.send(b"EHLO app.test")
            # Without a transaction the chunk is still read, and refused.
            raw.sock.sendall(b"BDAT 6 LAST\r\nNOOP\r\n")
            assert raw.reply().startswith(b"503 5.5.1 Error: need MAIL")
            assert raw.send(b"BDAT x").startswith(b"501 5.5.4 Syntax: BDAT chunk-size [LAST]")
            raw.send(b"MAIL FROM:<app@alpha.test> BODY=BINARYMIME")
            raw.send(b"RCPT TO:<larry@beta.test>")
            assert raw.send(b"DATA").startswith(b"503 5.5.1 BODY=BINARYMIME")
            raw.sock.sendall(b"BDAT 80\r\n" + b"a" * 80)
            assert raw.reply().startswith(b"250")
            assert raw.send(b"DATA").startswith(b"503 5.5.1 DATA after BDAT")
            raw.sock.sendall(b"BDAT 80 LAST\r\n" + b"b" * 80)
            assert raw.reply().startswith(b"552 5.3.4 Message too big")
            assert raw.send(b"MAIL FROM:<app@alpha.test>").startswith(b"250")  # reset
        finally:
            raw.close()
        assert sandbox.messages(folder=None) == []


async def test_bdat_with_aiosmtplib(sandbox: Sandbox) -> None:
    """aiosmtplib (the relay's own client) sees CHUNKING and BINARYMIME advertised; it has
    no BDAT call of its own, so the chunks go through its protocol object."""
    import aiosmtplib

    host, port = sandbox.smtp_address
    data = b"From: app@alpha.test\r\nSubject: from aiosmtplib\r\n" + COMPLETE + b"\r\n"
    data += b"line\r\n" * 5000 + b"\x00binary tail"
    client = aiosmtplib.SMTP(hostname=host, port=port, start_tls=False, timeout=10)
    async with client:
        await client.ehlo()
        assert client.supports_extension("chunking")
        assert client.supports_extension("binarymime")
        await client.mail("app@alpha.test", options=["BODY=BINARYMIME"])
        await client.rcpt(LARRY)
        protocol = client.protocol
        assert protocol is not None
        half = len(data) // 2
        for chunk, last in ((data[:half], b""), (data[half:], b" LAST")):
            protocol.write(b"BDAT %d%s\r\n" % (len(chunk), last) + chunk)
            reply = await protocol.read_response(timeout=10)
            assert reply.code == 250, reply
        assert reply.message.startswith("2.0.0 OK: queued as")
    await asyncio.to_thread(sandbox.wait_for, to=LARRY)
    [sent] = sandbox.messages(folder="Sent")
    assert sent.raw.endswith(data)
    [session] = [s for s in sandbox.journal("smtp.session") if s["server"] == "submission"]
    transcript = session["transcript"]
    assert f"C: BDAT {half}" in transcript and f"C: <chunk data, {half} bytes>" in transcript
    assert not any("line" in entry for entry in transcript)  # chunk bytes are not commands


def test_bare_postmaster_is_accepted_by_every_server(sandbox: Sandbox) -> None:
    """RFC 5321 §4.5.1: <Postmaster> without a domain MUST be accepted."""
    for address in (sandbox.smtp_address, sandbox.mx_addresses["beta.test"]):
        client = Raw(address)
        try:
            client.send(b"EHLO app.test")
            client.send(b"MAIL FROM:<app@alpha.test>")
            assert client.send(b"RCPT TO:<Postmaster>").startswith(b"250")
            assert client.send(b"DATA").startswith(b"354")
            assert client.send(MESSAGE + b".").startswith(b"250")
        finally:
            client.close()
    stored = {r.mailbox for r in sandbox.wait_for_count(2, folder="INBOX")}
    assert stored == {"postmaster@submission.localhost", "postmaster@beta.test"}


def test_help_lists_the_commands_the_sandbox_implements(raw: Raw) -> None:
    listing = raw.send(b"HELP")
    assert listing.startswith(b"250")
    for command in (b"BDAT", b"DATA", b"MAIL", b"RCPT"):
        assert command in listing.split(), listing
    assert raw.send(b"HELP BDAT") == b"250 2.0.0 Syntax: BDAT chunk-size [LAST]\r\n"
