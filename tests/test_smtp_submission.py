"""The submission server with real smtplib clients over real sockets."""

from __future__ import annotations

import asyncio
import re
import smtplib
import socket
import threading
import time
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.config import Account
from sandbox.testing import Sandbox
from tests import statuscodes as S
from tests.conftest import DATA

# Date and Message-ID, so that the submission server adds nothing (RFC 6409 §8).
COMPLETE = b"Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <t@alpha.test>\r\n"


def without_added_fields(stored: bytes, sent: bytes) -> bytes:
    """The stored message minus the Date/Message-ID the submission server added."""
    if not re.search(rb"(?im)^message-id:", sent):
        stored = re.sub(rb"Message-ID: <[0-9a-f]{24}@submission\.localhost>\r\n", b"", stored)
    if not re.search(rb"(?im)^date:", sent):
        stored = re.sub(rb"Date: [^\r\n]+\r\n(?=Message-ID: <[0-9a-f]{24}@)", b"", stored)
    return stored


def message(sender: str, to: list[str], subject: str = "hello", body: str = "hi\n") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg.set_content(body)
    return msg


def connect(sandbox: Sandbox) -> smtplib.SMTP:
    host, port = sandbox.smtp_address
    return smtplib.SMTP(host, port, timeout=10)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_any_credentials_accepted(sandbox: Sandbox, mechanism: str) -> None:
    with connect(sandbox) as client:
        client.ehlo("app.local")
        assert "PLAIN" in client.esmtp_features["auth"]
        assert "LOGIN" in client.esmtp_features["auth"]
        client.user, client.password = "anyone", "whatever"
        code, _ = client.auth(mechanism, getattr(client, f"auth_{mechanism.lower()}"))
        assert code == S.ACCEPTED_AUTH
        client.send_message(message("mikaela@alpha.test", ["larry@beta.test"]))
    [record] = sandbox.wait_for_count(1, to="larry@beta.test", folder=None)
    submitted = record.journey[0]
    assert submitted.step == "submitted"
    assert submitted.detail["auth_user"] == "anyone"
    assert "with ESMTPA" in record.raw.decode()


def test_ehlo_advertises_what_production_servers_do(sandbox: Sandbox) -> None:
    with connect(sandbox) as client:
        code, _ = client.ehlo("app.local")
        assert code == S.OK
        for feature in ("pipelining", "8bitmime", "smtputf8", "size", "enhancedstatuscodes"):
            assert client.has_extn(feature), feature
        assert client.esmtp_features["size"] == str(25 * 1024 * 1024)


def test_configured_accounts_refuse_wrong_passwords(config) -> None:
    config = replace(config, accounts=(Account("larry@beta.test", "s3cret"),))
    with Sandbox(config=config) as sandbox, connect(sandbox) as client:
        client.ehlo("app.local")
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.login("larry@beta.test", "wrong")
        assert refused.value.smtp_code == S.AUTH_FAILED
        assert refused.value.smtp_error.startswith(b"5.7.8")
        code, _ = client.login("larry@beta.test", "s3cret")
        assert code == S.ACCEPTED_AUTH


def test_recipients_across_fake_and_real_domains(sandbox: Sandbox) -> None:
    rcpts = [f"user{i}@{d}" for i in range(3) for d in ("alpha.test", "beta.test", "gamma.test")]
    rcpts += ["ceo@realcompany.com", "Someone@Example.ORG"]
    with connect(sandbox) as client:
        refused = client.sendmail(
            "mikaela@alpha.test", rcpts, message("mikaela@alpha.test", rcpts).as_bytes()
        )
        assert refused == {}
    inbox = {r.mailbox: r for r in sandbox.wait_for_count(len(rcpts), folder="INBOX")}
    assert set(inbox) == {r.lower() for r in rcpts}
    assert inbox["ceo@realcompany.com"].held and inbox["someone@example.org"].held
    assert not any(inbox[f"user0@{d}"].held for d in ("alpha.test", "beta.test", "gamma.test"))
    # stored once per hop: one raw message per receiving server, shared by its copies;
    # the held copies are a final delivery, with Return-Path, so a message of their own
    [sent] = sandbox.messages(folder="Sent")
    held = inbox["ceo@realcompany.com"]
    assert held.stored_id == inbox["someone@example.org"].stored_id != sent.stored_id
    assert held.raw.startswith(b"Return-Path: <mikaela@alpha.test>\r\nReceived: ")
    assert sent.raw.startswith(b"Received: ")
    for domain in ("alpha.test", "beta.test", "gamma.test"):
        assert len({inbox[f"user{i}@{domain}"].stored_id for i in range(3)}) == 1
    assert sent.mailbox == "mikaela@alpha.test" and "\\Seen" in sent.flags
    held_hops = [h for h in sent.journey if h.outcome == "held"]
    assert {h.detail["mailbox"] for h in held_hops} == {
        "ceo@realcompany.com",
        "someone@example.org",
    }
    assert "not a sandbox domain" in held_hops[0].detail["reason"]


def test_no_sent_copy_for_a_sender_outside_the_sandbox(sandbox: Sandbox) -> None:
    with connect(sandbox) as client:
        client.sendmail("app@myapp.example", ["larry@beta.test"], b"Subject: x\r\n\r\nbody\r\n")
    sandbox.wait_for_count(1, to="larry@beta.test", folder=None)
    assert [r.folder for r in sandbox.messages(folder=None)] == ["INBOX"]


def test_received_header_and_queue_id(sandbox: Sandbox) -> None:
    with connect(sandbox) as client:
        client.ehlo("app.local")
        client.mail("mikaela@alpha.test")
        client.rcpt("larry@beta.test")
        code, reply = client.data(b"Subject: trace\r\n\r\nbody\r\n")
    assert code == S.OK and reply.startswith(b"2.0.0 OK: queued as ")
    queue_id = reply.split()[-1].decode()
    [record] = sandbox.messages(folder="Sent")  # the copy as the submission server stored it
    raw = record.raw.decode()
    first = raw.split("\r\n\t")[0:3]
    assert first[0] == "Received: from app.local (localhost [127.0.0.1])"
    assert first[1] == f"by submission.localhost (mail-sandbox) with ESMTP id {queue_id}"
    assert first[2].startswith("for <larry@beta.test>; ")
    # RFC 6409 §8.2, §8.3: the submission server completes the header block.
    assert "Subject: trace\r\nDate: " in raw and raw.endswith("\r\n\r\nbody\r\n")


def test_utf8_headers_and_addresses_with_smtputf8(sandbox: Sandbox) -> None:
    raw = (DATA / "utf8_headers.eml").read_bytes()
    with connect(sandbox) as client:
        client.ehlo("app.local")
        refused = client.sendmail(
            "élodie@alpha.test",
            ["jürgen@beta.test"],
            raw,
            mail_options=["SMTPUTF8", "BODY=8BITMIME"],
        )
        assert refused == {}
    [record] = sandbox.wait_for_count(1, folder="INBOX")
    assert record.mailbox == "jürgen@beta.test"
    assert record.subject == "Grüße aus Köln — 日本語のテスト"
    assert record.sender == "élodie@alpha.test"  # the header's From, parsed
    assert record.headers["From"].endswith("<élodie@alpha.test>")
    stored = record.raw
    assert stored.endswith(raw), "the message is stored byte for byte after the trace header"
    assert b"with UTF8SMTP id" in stored


def test_eight_bit_body_kept_byte_for_byte(sandbox: Sandbox) -> None:
    body = bytes(range(0x80, 0x100)).replace(b"\r", b"").replace(b"\n", b"")
    raw = b"Subject: 8bit\r\nContent-Type: text/plain; charset=latin-1\r\n" + COMPLETE
    raw += b"\r\n" + body + b"\r\n"
    with connect(sandbox) as client:
        client.ehlo("app.local")
        client.sendmail("a@alpha.test", ["b@beta.test"], raw, mail_options=["BODY=8BITMIME"])
    [record] = sandbox.wait_for_count(1, folder="INBOX")
    assert record.raw.endswith(raw)


def test_dot_stuffed_lines_come_back_unstuffed(sandbox: Sandbox) -> None:
    raw = b"Subject: dots\r\n" + COMPLETE + b"\r\n.leading dot\r\n..two\r\n.\r\n"  # smtplib stuffs
    with connect(sandbox) as client:
        client.sendmail("a@alpha.test", ["b@beta.test"], raw)
    [record] = sandbox.wait_for_count(1, folder="INBOX")
    assert record.raw.endswith(raw)


def test_oversize_refused_with_552_and_server_goes_on(config) -> None:
    config = replace(config, smtp=replace(config.smtp, max_message_size=10_000))
    with Sandbox(config=config) as sandbox, connect(sandbox) as client:
        client.ehlo("app.local")
        # declared too big in MAIL FROM (RFC 1870)
        code, reply = client.mail("a@alpha.test", ["SIZE=20000"])
        assert code == S.MESSAGE_TOO_BIG and reply.startswith(b"5.3.4")
        # not declared, but sent anyway
        client.rset()
        client.mail("a@alpha.test")
        client.rcpt("b@beta.test")
        code, reply = client.data(
            b"Subject: big\r\n\r\n" + b"x" * 900 + b"\r\n" * 15 + (b"y" * 900 + b"\r\n") * 12
        )
        assert code == S.MESSAGE_TOO_BIG
        assert reply.startswith(b"5.3.4 Message too big") and b"10000 bytes" in reply
        # the same connection still works
        client.mail("a@alpha.test")
        client.rcpt("b@beta.test")
        code, _ = client.data(b"Subject: small\r\n\r\nok\r\n")
        assert code == S.OK
        assert [r.subject for r in sandbox.wait_for_count(1, folder="INBOX")] == ["small"]


def raw_session(sandbox: Sandbox, lines: list[bytes]) -> list[bytes]:
    """Send each line, collect each reply (multi-line replies joined)."""
    sock = socket.create_connection(sandbox.smtp_address, timeout=10)
    reader = sock.makefile("rb")
    replies = [reader.readline()]
    for line in lines:
        sock.sendall(line + b"\r\n")
        reply = reader.readline()
        while reply[3:4] == b"-":
            reply = reader.readline()
        replies.append(reply)
    sock.close()
    return replies


def test_bad_and_out_of_order_commands(sandbox: Sandbox) -> None:
    replies = raw_session(
        sandbox,
        [
            b"MAIL FROM:<a@alpha.test>",  # before EHLO
            b"EHLO app.local",
            b"RCPT TO:<b@beta.test>",  # before MAIL
            b"DATA",  # before RCPT
            b"MAIL FROM:<a@alpha.test>",
            b"MAIL FROM:<a@alpha.test>",  # nested
            b"RCPT TO:<not-an-address>",
            b"RCPT TO:<b@beta.test> BOGUS=1",
            b"MAIL FROM:<broken",
            b"FROB",
            b"",
            b"\xff\xfe",
            b"VRFY b@beta.test",
            b"NOOP",
            b"QUIT",
        ],
    )
    assert replies[0].startswith(b"220 submission.localhost ESMTP mail-sandbox")
    codes = [r[:9] for r in replies[1:]]
    assert codes == [
        b"503 5.5.1",
        b"250 HELP\r",
        b"503 5.5.1",
        b"503 5.5.1",
        b"250 2.1.0",
        b"503 5.5.1",
        b"501 5.1.3",  # strict: not name@domain
        b"555 5.5.4",
        b"503 5.5.1",  # MAIL inside a transaction is nested, whatever its syntax
        b"500 5.5.2",
        b"500 5.5.2",
        b"500 5.5.2",
        b"252 2.5.0",
        b"250 2.0.0",
        b"221 2.0.0",
    ]
    # every reply after the greeting and EHLO carries an enhanced code (RFC 2034)


def test_too_many_bad_commands_closes_cleanly_and_server_goes_on(sandbox: Sandbox) -> None:
    limit = sandbox.config.smtp.max_bad_commands
    replies = raw_session(sandbox, [b"EHLO x"] + [b"BOGUS"] * (limit + 1))
    assert replies[-1].startswith(b"421 4.7.0 Too many errors in this session")
    with connect(sandbox) as client:
        client.sendmail("a@alpha.test", ["b@beta.test"], b"Subject: after\r\n\r\nok\r\n")
    assert len(sandbox.wait_for_count(1, folder="INBOX")) == 1


def test_overlong_command_line(sandbox: Sandbox) -> None:
    replies = raw_session(sandbox, [b"EHLO x", b"NOOP " + b"a" * 10_000, b"NOOP"])
    assert replies[2].startswith(b"500 5.5.2 Command line too long")
    assert replies[3].startswith(b"250 2.0.0")


def test_null_sender_accepted(sandbox: Sandbox) -> None:
    with connect(sandbox) as client:
        client.ehlo("x")
        code, _ = client.mail("<>")
        assert code == S.OK
        client.rcpt("b@beta.test")
        code, _ = client.data(b"Subject: bounce\r\n\r\nbody\r\n")
        assert code == S.OK
    [record] = sandbox.wait_for_count(1, folder=None)
    assert record.envelope_from == ""
    assert record.journey[0].detail["mail_from"] == "<>"


def test_too_many_recipients(config) -> None:
    config = replace(config, smtp=replace(config.smtp, max_recipients=3))
    with Sandbox(config=config) as sandbox, connect(sandbox) as client:
        client.ehlo("x")
        client.mail("a@alpha.test")
        codes = [client.rcpt(f"u{i}@beta.test")[0] for i in range(4)]
        assert codes == [S.OK, S.OK, S.OK, S.TOO_MANY_RECIPIENTS]
        code, _ = client.data(b"Subject: three\r\n\r\nbody\r\n")
        assert code == S.OK
        assert len(sandbox.wait_for_count(3, folder="INBOX")) == 3


def test_idle_connection_gets_421(config) -> None:
    config = replace(config, smtp=replace(config.smtp, idle_timeout=0.3))
    with Sandbox(config=config) as sandbox:
        sock = socket.create_connection(sandbox.smtp_address, timeout=10)
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"220 ")
        assert reader.readline().startswith(b"421 4.4.2 Idle too long")
        assert reader.readline() == b""  # closed
        sock.close()


def test_concurrent_connections_all_stored(sandbox: Sandbox) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with connect(sandbox) as client:
                for i in range(20):
                    msg = message("a@alpha.test", [f"box{n}@beta.test"], subject=f"{n}-{i}")
                    client.send_message(msg)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    inbox = sandbox.wait_for_count(200, folder="INBOX")
    assert len(inbox) == 200
    assert {r.subject for r in inbox} == {f"{n}-{i}" for n in range(10) for i in range(20)}
    for n in range(10):  # UIDs ascend without gaps in each mailbox
        uids = [r.uid for r in inbox if r.mailbox == f"box{n}@beta.test"]
        assert uids == list(range(1, 21))


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.eml")))
def test_real_world_shaped_messages_are_stored_and_listed(sandbox: Sandbox, name: str) -> None:
    raw = (DATA / name).read_bytes()
    with connect(sandbox) as client:
        client.ehlo("x")
        client.sendmail(
            "a@alpha.test", ["larry@beta.test"], raw, mail_options=["SMTPUTF8", "BODY=8BITMIME"]
        )
    [record] = sandbox.wait_for_count(1, folder="INBOX")
    assert without_added_fields(record.raw, raw).endswith(raw)
    assert record.size == len(record.raw)


def test_session_events_are_published_and_journaled(sandbox: Sandbox) -> None:
    with connect(sandbox) as client:
        client.ehlo("app.local")
        client.login("someone", "secret-password")
        client.sendmail("a@alpha.test", ["b@beta.test"], b"Subject: j\r\n\r\nbody\r\n")
    [event] = [e for e in sandbox.journal("smtp.session") if e["server"] == "submission"]
    assert event["helo"] == "app.local"
    assert event["auth_user"] == "someone"
    assert event["messages"] == 1
    transcript = "\n".join(event["transcript"])
    assert "C: AUTH PLAIN ****" in transcript
    assert "secret-password" not in transcript and "c2VjcmV0" not in transcript
    assert "C: <message data, " in transcript
    assert "S: 250 2.0.0 OK: queued as" in transcript
    sandbox.wait_for_count(1, to="b@beta.test", folder=None)
    stored = sandbox.journal("message.stored")
    assert [entry[1:] for e in stored for entry in e["entries"]] == [
        ["a@alpha.test", "Sent"],
        ["b@beta.test", "INBOX"],
    ]


def test_restart_on_the_same_data_file_keeps_everything(config, tmp_path: Path) -> None:
    with Sandbox(config=config, data=config.data) as sandbox, connect(sandbox) as client:
        for i in range(5):
            client.sendmail(
                "a@alpha.test",
                ["b@beta.test", "c@x.example"],
                f"Subject: {i}\r\n\r\nx\r\n".encode(),
            )
        sandbox.wait_for_count(5, to="b@beta.test", folder=None)
        before = [
            (r.id, r.mailbox, r.uid, r.subject, r.held) for r in sandbox.messages(folder=None)
        ]
    with Sandbox(config=config, data=config.data) as sandbox, connect(sandbox) as client:
        assert [
            (r.id, r.mailbox, r.uid, r.subject, r.held) for r in sandbox.messages(folder=None)
        ] == before
        client.sendmail("a@alpha.test", ["b@beta.test"], b"Subject: after restart\r\n\r\nx\r\n")
        last = sandbox.wait_for_count(6, to="b@beta.test", folder=None)[-1]
        assert last.subject == "after restart" and last.uid == 6


_atext = st.text("abcXYZ019!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=8)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_atext, min_size=1, max_size=3),
    st.sampled_from(["beta.test", "x-y.example", "a.b.c", "[127.0.0.1]", "b..c", "-bad.test"]),
    st.sampled_from(["", " SIZE=100", "  BODY=8BITMIME SMTPUTF8", "junk"]),
    st.sampled_from(["<{}>", " <{}>", "{}", "<{}", '<"q r"{}>']),
)
def test_fast_address_parser_agrees_with_aiosmtpd(locals_, domain, params, shape) -> None:
    from aiosmtpd.smtp import SMTP

    from sandbox.events import EventBus
    from sandbox.smtp.protocol import SandboxSMTP

    class Handler:
        pass

    loop = asyncio.new_event_loop()
    try:
        server = SandboxSMTP(Handler(), bus=EventBus(), server_name="t", loop=loop)
        arg = shape.format(".".join(locals_) + "@" + domain) + params
        assert server._getaddr(arg) == SMTP._getaddr(server, arg)
    finally:
        loop.close()


def test_connection_limit_per_listener(config) -> None:
    config = replace(config, smtp=replace(config.smtp, max_connections=2))
    with Sandbox(config=config) as sandbox:
        held = [socket.create_connection(sandbox.smtp_address, timeout=10) for _ in range(2)]
        for sock in held:
            assert sock.makefile("rb").readline().startswith(b"220 ")
        extra = socket.create_connection(sandbox.smtp_address, timeout=10)
        reader = extra.makefile("rb")
        assert reader.readline().startswith(b"421 4.7.0 Too many connections")
        assert reader.readline() == b""  # and closed
        extra.close()
        held.pop().close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the freed place is taken back asynchronously
            with socket.create_connection(sandbox.smtp_address, timeout=10) as again:
                if again.makefile("rb").readline().startswith(b"220 "):
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("a freed connection place was never given back")
        # the MX servers count their own connections
        with smtplib.SMTP(*sandbox.mx_addresses["beta.test"], timeout=10) as client:
            assert client.noop()[0] == S.OK
        for sock in held:
            sock.close()


def test_bad_command_budget_then_421(config) -> None:
    config = replace(config, smtp=replace(config.smtp, max_bad_commands=3))
    with Sandbox(config=config) as sandbox:
        replies = raw_session(sandbox, [b"MAIL FROM:<a@alpha.test>"] * 4)
        assert [r[:3] for r in replies[1:]] == [b"503", b"503", b"503", b"421"]
        assert replies[-1].startswith(b"421 4.7.0 Too many errors in this session")
        with connect(sandbox) as client:  # the server goes on
            assert client.ehlo("x")[0] == S.OK
