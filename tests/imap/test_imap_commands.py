"""Every command and extension through imaplib, over real sockets, errors included."""

from __future__ import annotations

import base64
import contextlib
import imaplib
import smtplib
import socket
import sqlite3
import ssl
import threading
import time
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import pytest
import trustme

from sandbox.config import Account
from tests.conftest import make_config
from tests.imap.conftest import ImapSandbox, imap_sandbox

LARRY = "larry@beta.test"


def selected(imap: ImapSandbox, *subjects: str, user: str = LARRY) -> imaplib.IMAP4:
    for subject in subjects:
        imap.deliver(user, subject)
    client = imap.client(user)
    typ, _ = client.select("INBOX")
    assert typ == "OK"
    return client


def untagged(client: imaplib.IMAP4, name: str) -> list[bytes]:
    return [d for d in client.untagged_responses.pop(name, []) if d is not None]


# --- not authenticated ------------------------------------------------------------------


def test_greeting_and_capabilities_before_login(imap: ImapSandbox) -> None:
    client = imap.client()
    assert client.welcome.startswith(b"* OK [CAPABILITY IMAP4rev1")
    caps = set(client.capabilities)
    for cap in (
        "IMAP4REV1",
        "STARTTLS",
        "AUTH=PLAIN",
        "LITERAL+",
        "SASL-IR",
        "IDLE",
        "UIDPLUS",
        "MOVE",
        "NAMESPACE",
        "ID",
        "ENABLE",
        "SPECIAL-USE",
        "UNSELECT",
        "CHILDREN",
    ):
        assert cap in caps, cap
    assert "LOGINDISABLED" not in caps


@pytest.mark.parametrize(
    ("command", "args", "text"),
    [
        ("SELECT", ("INBOX",), b"SELECT needs a login first"),
        ("LIST", ('""', "*"), b"LIST needs a login first"),
        ("FETCH", ("1", "FLAGS"), b"FETCH needs a login first"),
    ],
)
def test_commands_before_login_are_refused(imap: ImapSandbox, command, args, text) -> None:
    client = imap.client()
    client.state = "SELECTED"  # imaplib checks states itself; we want the server's answer
    with pytest.raises(imaplib.IMAP4.error) as refused:
        getattr(client, command.lower())(*args)
    assert text in str(refused.value).encode()


def test_selected_commands_need_a_selected_mailbox(imap: ImapSandbox) -> None:
    client = imap.client(LARRY)
    client.state = "SELECTED"  # imaplib checks states itself; we want the server's answer
    for call in (lambda: client.fetch("1", "FLAGS"), client.expunge, client.check):
        with pytest.raises(imaplib.IMAP4.error, match="needs a selected mailbox"):
            call()
    client.state = "NONAUTH"
    with pytest.raises(imaplib.IMAP4.error, match="already authenticated"):
        client.login(LARRY, "again")


def test_login_needs_an_address(imap: ImapSandbox) -> None:
    client = imap.client()
    with pytest.raises(imaplib.IMAP4.error, match=r"AUTHENTICATIONFAILED.*mailbox address"):
        client.login("larry", "x")
    assert client.login("Larry@Beta.TEST", "anything")[0] == "OK"
    client.select("INBOX")
    assert client.list()[0] == "OK"


def test_configured_accounts_refuse_wrong_passwords(tmp_path: Path, ca: trustme.CA) -> None:
    config = replace(make_config(tmp_path), accounts=(Account(LARRY, "s3cret"),))
    for imap in imap_sandbox(tmp_path, ca, config):
        client = imap.client()
        with pytest.raises(imaplib.IMAP4.error, match=r"\[AUTHENTICATIONFAILED\]"):
            client.login(LARRY, "wrong")
        with pytest.raises(imaplib.IMAP4.error, match=r"\[AUTHENTICATIONFAILED\]"):
            client.login("all", "wrong")
        assert client.login(LARRY, "s3cret")[0] == "OK"


def test_authenticate_plain_with_and_without_initial_response(imap: ImapSandbox) -> None:
    client = imap.client()
    typ, _data = client.authenticate("PLAIN", lambda _: f"\0{LARRY}\0pw".encode())
    assert typ == "OK"
    assert client.state == "AUTH"
    # SASL-IR (RFC 4959): the response on the command line, no continuation round trip.
    raw = imap.raw()
    raw.recv(1000)
    token = base64.b64encode(f"\0{LARRY}\0pw".encode())
    raw.sendall(b"a AUTHENTICATE PLAIN " + token + b"\r\n")
    assert b"a OK [CAPABILITY" in _read_until(raw, b"a ")
    raw.sendall(b"b AUTHENTICATE PLAIN\r\n")
    assert _read_until(raw, b"b ").startswith(b"b BAD")  # already authenticated
    raw.close()


def test_authenticate_cancelled_and_unknown_mechanism(imap: ImapSandbox) -> None:
    raw = imap.raw()
    raw.recv(1000)
    raw.sendall(b"a AUTHENTICATE PLAIN\r\n")
    assert _read_until(raw, b"+ ") == b"+ \r\n"
    raw.sendall(b"*\r\n")
    assert _read_until(raw, b"a ").startswith(b"a BAD AUTHENTICATE cancelled")
    raw.sendall(b"b AUTHENTICATE CRAM-MD5\r\n")
    assert _read_until(raw, b"b ").startswith(b"b NO")
    raw.close()


def test_starttls_then_login(imap: ImapSandbox) -> None:
    client = imap.client()
    context = ssl.create_default_context(cafile=str(imap.ca_file))
    assert client.starttls(context)[0] == "OK"
    assert "STARTTLS" not in client.capabilities
    assert client.login(LARRY, "x")[0] == "OK"
    assert client.select("INBOX")[0] == "OK"


@pytest.mark.parametrize("where", ["parser", "stream reader"])
def test_plaintext_pipelined_after_starttls_is_never_answered(
    imap: ImapSandbox, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """RFC 3501 §6.2.1, RFC 2595 §3.1: the STARTTLS command-injection class of bugs. A
    command sent in the same packet as STARTTLS must be dropped before the handshake,
    whether the server already read it into its parser or it still waits in asyncio's
    StreamReader buffer (reads cut to the STARTTLS line's length put it there)."""
    starttls = b"a STARTTLS\r\n"
    if where == "stream reader":
        monkeypatch.setattr("sandbox.imap.server._READ_SIZE", len(starttls))
    raw = imap.raw()
    raw.settimeout(5)
    greeting = b""
    while not greeting.endswith(b"\r\n"):
        greeting += raw.recv(1)
    assert greeting.startswith(b"* OK")
    raw.sendall(starttls + b"b CAPABILITY\r\n")
    reply = b""
    while not reply.endswith(b"\r\n"):  # byte by byte: leave the TLS records alone
        reply += raw.recv(1)
    assert reply == b"a OK Begin TLS negotiation now\r\n"
    context = ssl.create_default_context(cafile=str(imap.ca_file))
    tls = context.wrap_socket(raw, server_hostname="localhost")
    tls.sendall(b"c NOOP\r\n")
    answered = b""
    while b"c OK" not in answered:
        chunk = tls.recv(65536)
        assert chunk, answered
        answered += chunk
    assert answered == b"c OK NOOP completed\r\n", "b was never answered"
    tls.sendall(b"d CAPABILITY\r\n")
    assert b"STARTTLS" not in tls.recv(65536)
    tls.close()


def test_implicit_tls(imap: ImapSandbox) -> None:
    imap.deliver(LARRY, "secure")
    client = imap.tls_client(LARRY)
    assert client.select("INBOX") == ("OK", [b"1"])


def test_logindisabled_until_tls(tmp_path: Path, ca: trustme.CA) -> None:
    for imap in imap_sandbox(tmp_path, ca, require_tls_for_auth=True):
        client = imap.client()
        assert "LOGINDISABLED" in client.capabilities
        assert "AUTH=PLAIN" not in client.capabilities
        with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
            client.login(LARRY, "x")
        client.starttls(ssl.create_default_context(cafile=str(imap.ca_file)))
        assert client.login(LARRY, "x")[0] == "OK"


# --- authenticated ------------------------------------------------------------------


def test_list_lsub_special_use_children(imap: ImapSandbox) -> None:
    client = imap.client(LARRY)
    assert client.create("Work/Projects")[0] == "OK"
    typ, data = client.list()
    assert typ == "OK"
    assert set(data) == {
        b'(\\HasNoChildren) "/" INBOX',
        b'(\\HasNoChildren \\Sent) "/" Sent',
        b'(\\HasNoChildren \\Trash) "/" Trash',
        b'(\\HasNoChildren \\Junk) "/" Junk',
        b'(\\Noselect \\HasChildren) "/" Work',
        b'(\\HasNoChildren) "/" Work/Projects',
    }
    top = client.list("", "%")[1]
    assert top[0] == b'(\\HasNoChildren) "/" INBOX'
    assert set(top) == {
        b'(\\HasNoChildren) "/" INBOX',
        b'(\\HasNoChildren \\Junk) "/" Junk',
        b'(\\HasNoChildren \\Sent) "/" Sent',
        b'(\\HasNoChildren \\Trash) "/" Trash',
        b'(\\Noselect \\HasChildren) "/" Work',
    }
    assert client.list("", "inbox")[1] == [b'(\\HasNoChildren) "/" INBOX']
    assert client.list("", '""')[1] == [b'(\\Noselect) "/" ""']
    assert client.unsubscribe("Trash")[0] == "OK"
    lsub = client.lsub()[1]
    assert b'(\\HasNoChildren \\Trash) "/" Trash' not in lsub
    assert b'(\\HasNoChildren) "/" INBOX' in lsub
    with pytest.raises(imaplib.IMAP4.error):
        client.list("", "(")


def test_create_delete_rename(imap: ImapSandbox) -> None:
    client = imap.client(LARRY)
    assert client.create("Archive")[0] == "OK"
    typ, data = client.create("Archive")
    assert typ == "NO" and b"[ALREADYEXISTS]" in data[0]
    assert client.create("INBOX")[0] == "NO"
    assert client.rename("Archive", "Old")[0] == "OK"
    assert client.select("Old")[0] == "OK"
    assert b"[NONEXISTENT]" in client.select("Archive")[1][0]
    assert client.state == "AUTH"  # a failed SELECT deselects (§6.3.1)
    assert client.delete("Old")[0] == "OK"
    typ, data = client.delete("Sent")
    assert typ == "NO" and b"[CANNOT]" in data[0]
    assert client.delete("Nope")[0] == "NO"
    assert client.rename("Trash", "Bin")[0] == "NO"


def test_rename_inbox_moves_its_messages(imap: ImapSandbox) -> None:
    imap.deliver(LARRY, "a")
    imap.deliver(LARRY, "b")
    client = imap.client(LARRY)
    assert client.rename("INBOX", "Saved")[0] == "OK"
    assert client.status("INBOX", "(MESSAGES)")[1] == [b"INBOX (MESSAGES 0)"]
    assert client.status("Saved", "(MESSAGES)")[1] == [b"Saved (MESSAGES 2)"]


def test_non_ascii_folder_names_in_modified_utf7(imap: ImapSandbox) -> None:
    client = imap.client(LARRY)
    assert client.create("&ZeVnLIqe-")[0] == "OK"  # 日本語
    assert b'"/" &ZeVnLIqe-' in b"".join(client.list()[1])
    folders = imap.sandbox.call(lambda _: imap.imap.backend.folders(LARRY))
    assert "日本語" in {f.name for f in folders}


def test_status(imap: ImapSandbox) -> None:
    imap.deliver(LARRY, "a")
    imap.deliver(LARRY, "b", flags=("\\Seen",))
    client = imap.client(LARRY)
    typ, data = client.status("INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)")
    assert typ == "OK"
    assert data[0].startswith(b"INBOX (MESSAGES 2 RECENT 2 UIDNEXT 3 UIDVALIDITY ")
    assert data[0].endswith(b" UNSEEN 1)")
    with pytest.raises(imaplib.IMAP4.error, match="Unknown status item"):
        client.status("INBOX", "(BOGUS)")


def test_append_with_flags_and_date_reports_appenduid(imap: ImapSandbox) -> None:
    client = imap.client(LARRY)
    when = imaplib.Time2Internaldate(1700000000)
    typ, data = client.append("Sent", "(\\Seen $Important)", when, b"Subject: x\r\n\r\nbody\r\n")
    assert typ == "OK"
    assert data[0].startswith(b"[APPENDUID ") and data[0].split()[2] == b"1]"
    client.select("Sent")
    typ, data = client.fetch("1", "(FLAGS INTERNALDATE)")
    assert b"\\Seen $Important" in data[0]
    assert b'INTERNALDATE "14-Nov-2023 22:13:20 +0000"' in data[0]
    typ, data = client.append("Missing", None, None, b"Subject: x\r\n\r\n")
    assert typ == "NO" and b"[TRYCREATE]" in data[0]
    [record] = imap.sandbox.messages(folder="Sent")
    assert record.flags == ("\\Seen", "$Important")


def test_namespace_id_enable(imap: ImapSandbox) -> None:
    client = imap.client(LARRY)
    assert client.namespace() == ("OK", [b'(("" "/")) NIL NIL'])
    typ, _data = client.xatom("ID", '("name" "pytest")')
    assert typ == "OK"
    assert untagged(client, "ID") == [b'("name" "mail-sandbox" "vendor" "mail-sandbox")']
    assert client.enable("CONDSTORE")[0] == "OK"


# --- selected -----------------------------------------------------------------------


def test_select_and_examine_responses(imap: ImapSandbox) -> None:
    imap.deliver(LARRY, "a", flags=("\\Seen",))
    imap.deliver(LARRY, "b")
    client = imap.client(LARRY)
    assert client.select("INBOX") == ("OK", [b"2"])
    assert untagged(client, "RECENT") == [b"2"]
    assert untagged(client, "UNSEEN") == [b"2"]
    assert untagged(client, "UIDNEXT") == [b"3"]
    assert untagged(client, "READ-WRITE")
    # \Recent goes to the first session only (§2.3.2).
    other = imap.client(LARRY)
    assert other.select("INBOX", readonly=True) == ("OK", [b"2"])
    assert untagged(other, "RECENT") == [b"0"]
    assert untagged(other, "READ-ONLY")
    typ, data = other.store("1", "+FLAGS", "\\Flagged")
    assert typ == "NO" and b"[READ-ONLY]" in data[0]
    # EXAMINE never sets \Seen (§6.3.2).
    other.fetch("2", "(BODY[])")
    assert b"\\Seen" not in client.fetch("2", "FLAGS")[1][0]


def test_fetch_items(imap: ImapSandbox) -> None:
    raw = (Path(__file__).parents[1] / "data" / "nested_multipart.eml").read_bytes()
    imap.deliver(LARRY, raw=raw)
    client = selected(imap)
    typ, data = client.fetch("1", "(UID RFC822.SIZE FLAGS ENVELOPE BODYSTRUCTURE)")
    assert typ == "OK"
    assert b"BODYSTRUCTURE ((" in data[0]
    assert b"RFC822.SIZE %d" % len(raw) in data[0]
    typ, data = client.fetch("1", "(BODY.PEEK[HEADER] BODY.PEEK[TEXT]<0.10> BODY.PEEK[1])")
    assert typ == "OK"
    assert b"\\Seen" not in client.fetch("1", "FLAGS")[1][0]
    header, _, _ = raw.partition(b"\r\n\r\n")
    assert data[0][1] == header + b"\r\n\r\n"
    typ, data = client.fetch("1", "(RFC822)")
    assert data[0][1] == raw
    assert b"\\Seen" in b"".join(x if isinstance(x, bytes) else x[0] for x in data)
    typ, data = client.fetch("1", "(BODY[99])")
    assert typ == "OK" and b"BODY[99] NIL" in data[0]
    for macro in ("ALL", "FAST", "FULL"):
        assert client.fetch("1", macro)[0] == "OK"
    with pytest.raises(imaplib.IMAP4.error, match="No message with sequence number 5"):
        client.fetch("5", "FLAGS")
    with pytest.raises(imaplib.IMAP4.error, match="Unknown fetch item"):
        client.fetch("1", "(BOGUS)")


def test_body_sets_seen_but_peek_does_not(imap: ImapSandbox) -> None:
    client = selected(imap, "one", "two")
    client.fetch("1", "(BODY.PEEK[])")
    client.fetch("2", "(BODY[TEXT])")
    flags = {r.subject: r.flags for r in imap.sandbox.messages(to=LARRY, folder=None)}
    assert flags == {"one": (), "two": ("\\Seen",)}


def test_uid_fetch_store_search_copy_move_expunge(imap: ImapSandbox) -> None:
    client = selected(imap, "a", "b", "c", "d")
    typ, data = client.uid("FETCH", "2:*", "(FLAGS)")
    assert [d.split(b"(")[1].split()[:2] for d in data] == [
        [b"UID", b"2"],
        [b"UID", b"3"],
        [b"UID", b"4"],
    ]
    assert client.uid("FETCH", "99:*", "(FLAGS)")[1][0].startswith(b"4 (UID 4")  # §6.4.8
    assert client.uid("STORE", "1,3", "+FLAGS.SILENT", "(\\Deleted)") == ("OK", [None])
    assert client.uid("SEARCH", None, "DELETED") == ("OK", [b"1 3"])
    # UIDPLUS UID EXPUNGE removes only the named \Deleted messages.
    assert client.uid("EXPUNGE", "3")[0] == "OK"
    assert untagged(client, "EXPUNGE") == [b"3"]
    assert client.uid("SEARCH", None, "ALL") == ("OK", [b"1 2 4"])
    typ, data = client._simple_command("UID", "COPY", "2,4", "Trash")
    assert (
        typ == "OK" and data[0].startswith(b"[COPYUID ") and b" 2,4 1:2] COPY completed" in data[0]
    )
    typ, data = client.uid("MOVE", "4", "Trash")
    assert typ == "OK"
    assert untagged(client, "EXPUNGE") == [b"3"]
    assert client.uid("SEARCH", None, "ALL") == ("OK", [b"1 2"])
    assert client.status("Trash", "(MESSAGES)")[1] == [b"Trash (MESSAGES 3)"]
    typ, data = client.copy("1", "Nowhere")
    assert typ == "NO" and b"[TRYCREATE]" in data[0]


def test_store_forms_and_keywords(imap: ImapSandbox) -> None:
    client = selected(imap, "a")
    assert client.store("1", "FLAGS", "(\\Flagged $Label)")[1] == [
        b"1 (FLAGS (\\Flagged $Label \\Recent))"
    ]
    assert client.store("1", "+FLAGS", "(\\seen)")[1] == [
        b"1 (FLAGS (\\Flagged $Label \\Seen \\Recent))"
    ]
    assert client.store("1", "-FLAGS", "($label)")[1] == [b"1 (FLAGS (\\Flagged \\Seen \\Recent))"]
    assert client.store("1", "FLAGS.SILENT", "()") == ("OK", [None])
    with pytest.raises(imaplib.IMAP4.error, match="Expected FLAGS"):
        client.store("1", "LABELS", "(x)")
    [record] = imap.sandbox.messages(to=LARRY, folder=None)
    assert record.flags == ()


def test_search_keys(imap: ImapSandbox) -> None:
    client = selected(imap, "alpha", "beta", "gamma")
    client.store("2", "+FLAGS", "(\\Answered \\Seen $Work)")
    search = lambda *keys: client.search(None, *keys)[1][0]  # noqa: E731
    assert search("ALL") == b"1 2 3"
    assert search("SUBJECT", "BETA") == b"2"
    assert search("FROM", "sender@alpha") == b"1 2 3"
    assert search("TO", "nobody") == b""
    assert search("HEADER", "Message-ID", "gamma@") == b"3"
    assert search("BODY", "hi") == b"1 2 3"
    assert search("TEXT", "gamma") == b"3"
    assert search("ANSWERED") == b"2"
    assert search("UNSEEN") == b"1 3"
    assert search("KEYWORD", "$Work") == b"2"
    assert search("UNKEYWORD", "$Work") == b"1 3"
    assert search("NOT", "SEEN") == b"1 3"
    assert search("OR", "SUBJECT", "alpha", "SUBJECT", "gamma") == b"1 3"
    assert search("(SUBJECT", "alpha", "UNSEEN)") == b"1"
    assert search("2:*") == b"2 3"
    assert search("UID", "1,3") == b"1 3"
    assert search("LARGER", "10", "SMALLER", "100000") == b"1 2 3"
    assert search("SENTON", "1-Jan-2024") == b"1 2 3"
    assert search("SENTBEFORE", "1-Jan-2024") == b""
    assert search("SINCE", "1-Jan-2000", "BEFORE", "1-Jan-2100") == b"1 2 3"
    assert search("ON", "1-Jan-2000") == b""
    assert search("NEW") == b"1 3"
    assert search("OLD") == b""
    assert search("RECENT", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNANSWERED") == b"1 3"
    assert search("DRAFT") == b"" and search("FLAGGED") == b"" and search("DELETED") == b""
    assert client.search("UTF-8", "SUBJECT", "alpha")[1] == [b"1"]
    typ, data = client.search("KOI8-R", "ALL")
    assert typ == "NO" and b"[BADCHARSET" in data[0]
    with pytest.raises(imaplib.IMAP4.error, match="Unknown search key"):
        client.search(None, "SHINY")


def test_expunge_close_unselect(imap: ImapSandbox) -> None:
    client = selected(imap, "a", "b", "c")
    client.store("1,3", "+FLAGS", "\\Deleted")
    assert client.expunge() == ("OK", [b"3", b"1"])  # highest first, each renumbers after it
    client.store("1", "+FLAGS", "\\Deleted")
    assert client.unselect()[0] == "OK"
    assert len(imap.sandbox.messages(to=LARRY, folder=None)) == 1
    client.select("INBOX")
    assert client.close()[0] == "OK"
    assert client.state == "AUTH"
    assert imap.sandbox.messages(to=LARRY, folder=None) == []
    # the messages rows went with their last copies
    with contextlib.closing(sqlite3.connect(imap.sandbox.data_path)) as db:
        assert db.execute("SELECT count(*) FROM messages").fetchone() == (0,)


def test_two_sessions_see_each_others_expunges_and_flags(imap: ImapSandbox) -> None:
    first = selected(imap, "a", "b", "c", "d")
    second = imap.client(LARRY)
    second.select("INBOX")
    second.store("2,4", "+FLAGS", "(\\Deleted)")
    second.expunge()
    first.noop()
    assert untagged(first, "EXPUNGE") == [b"4", b"2"]
    assert untagged(first, "FETCH") == []  # flags of messages that are gone are not news
    assert first.search(None, "ALL")[1] == [b"1 2"]
    assert first.fetch("2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1][0][1] == (
        b"Subject: c\r\n\r\n"
    )
    second.store("1", "+FLAGS", "(\\Flagged)")
    first.noop()
    assert untagged(first, "FETCH") == [b"1 (UID 1 FLAGS (\\Flagged \\Recent))"]
    # New messages arrive as EXISTS after any command; not EXPUNGE during FETCH (§7.4.1).
    second.store("2", "+FLAGS", "(\\Deleted)")
    second.expunge()
    imap.deliver(LARRY, "e")
    untagged(first, "EXISTS")
    first.fetch("1", "(FLAGS)")
    assert untagged(first, "EXPUNGE") == []
    assert untagged(first, "EXISTS") == [b"3"]
    first.noop()
    assert untagged(first, "EXPUNGE") == [b"2"]


def test_idle_hears_smtp_delivery_within_a_second(imap: ImapSandbox) -> None:
    client = selected(imap)
    tag = client._new_tag()
    client.send(tag + b" IDLE\r\n")
    assert client._get_line().startswith(b"+ ")
    started = time.monotonic()
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "app@alpha.test", LARRY, "ping"
    msg.set_content("hello\n")
    host, port = imap.sandbox.smtp_address
    with smtplib.SMTP(host, port, timeout=10) as smtp:
        smtp.send_message(msg)
    client.sock.settimeout(1.0)
    assert client._get_line() == b"* 1 EXISTS"
    assert time.monotonic() - started < 1.0 + 0.5
    assert client._get_line() == b"* 1 RECENT"
    client.send(b"DONE\r\n")
    assert client._get_line() == tag + b" OK IDLE terminated"
    client.sock.settimeout(10)
    assert client.noop()[0] == "OK"


def test_idle_sees_expunge_from_another_session(imap: ImapSandbox) -> None:
    client = selected(imap, "a", "b")
    other = imap.client(LARRY)
    other.select("INBOX")
    tag = client._new_tag()
    client.send(tag + b" IDLE\r\n")
    assert client._get_line().startswith(b"+ ")
    other.store("1", "+FLAGS", "(\\Deleted)")
    assert client._get_line() == b"* 1 FETCH (UID 1 FLAGS (\\Deleted \\Recent))"
    other.expunge()
    assert client._get_line() == b"* 1 EXPUNGE"
    client.send(b"done\r\n")
    assert client._get_line() == tag + b" OK IDLE terminated"


def test_the_all_login_sees_every_mailbox(imap: ImapSandbox) -> None:
    imap.deliver(LARRY, "for larry")
    imap.deliver("mikaela@alpha.test", "for mikaela")
    client = imap.client("all")
    names = {line.rsplit(b'"/" ', 1)[1] for line in client.list()[1]}
    assert {b"larry@beta.test", b"larry@beta.test/INBOX", b"mikaela@alpha.test/Sent"} <= names
    assert b'(\\Noselect \\HasChildren) "/" larry@beta.test' in client.list()[1]
    assert client.select("larry@beta.test/inbox") == ("OK", [b"1"])
    assert client.create("larry@beta.test/Archive")[0] == "OK"
    assert client.copy("1", "larry@beta.test/Archive")[0] == "OK"
    assert client.select("INBOX")[0] == "NO"
    larry = imap.client(LARRY)
    assert b"Archive" in b"".join(larry.list()[1])


# --- the wire ------------------------------------------------------------------------


_BUFFERS: dict[int, bytes] = {}


def _read_until(sock: socket.socket, start: bytes, limit: float = 5.0) -> bytes:
    """The next line that begins with ``start`` (earlier lines skipped, later ones kept)."""
    sock.settimeout(limit)
    buf = _BUFFERS.pop(sock.fileno(), b"")
    while True:
        while b"\r\n" in buf:
            line, buf = buf.split(b"\r\n", 1)
            if line.startswith(start):
                _BUFFERS[sock.fileno()] = buf
                return line + b"\r\n"
        chunk = sock.recv(65536)
        if not chunk:
            return buf
        buf += chunk


def raw_session(imap: ImapSandbox, user: str | None = LARRY) -> socket.socket:
    sock = imap.raw()
    _BUFFERS.pop(sock.fileno(), None)
    _read_until(sock, b"* OK")
    if user:
        sock.sendall(f"l LOGIN {user} x\r\n".encode())
        assert _read_until(sock, b"l ").startswith(b"l OK")
    return sock


def test_literal_over_the_limit_is_refused_before_it_is_sent(tmp_path: Path, ca) -> None:
    for imap in imap_sandbox(tmp_path, ca, max_literal_size=1000):
        sock = raw_session(imap)
        sock.sendall(b"a APPEND INBOX {5000}\r\n")
        reply = _read_until(sock, b"a ")
        assert reply == b"a NO [TOOBIG] Literal of 5000 octets exceeds the limit of 1000\r\n"
        # LITERAL+ arrives anyway: it is thrown away and the connection stays usable.
        sock.sendall(b"b APPEND INBOX {2000+}\r\n" + b"x" * 2000 + b"\r\nc NOOP\r\n")
        assert _read_until(sock, b"b ").startswith(b"b NO [TOOBIG]")
        assert _read_until(sock, b"c ") == b"c OK NOOP completed\r\n"
        sock.sendall(b"d APPEND INBOX {12}\r\n")
        assert _read_until(sock, b"+") == b"+ Ready for literal data\r\n"
        sock.sendall(b"Subject: x\r\n\r\n")
        assert _read_until(sock, b"d ").startswith(b"d OK [APPENDUID")
        sock.sendall(b"e APPEND INBOX (\\Seen) {12+}\r\nSubject: y\r\n\r\n")
        assert _read_until(sock, b"e ").startswith(b"e OK [APPENDUID")


def test_long_line_is_refused_and_connection_survives(tmp_path: Path, ca) -> None:
    for imap in imap_sandbox(tmp_path, ca, max_line_length=200):
        sock = raw_session(imap)
        sock.sendall(b"a NOOP " + b"x" * 500 + b"\r\nb NOOP\r\n")
        assert _read_until(sock, b"a ").startswith(b"a BAD Line longer than 200")
        assert _read_until(sock, b"b ") == b"b OK NOOP completed\r\n"


def test_garbage_gets_bad_and_the_budget_ends_the_connection(tmp_path: Path, ca) -> None:
    for imap in imap_sandbox(tmp_path, ca, max_bad_commands=3):
        sock = raw_session(imap, None)
        sock.sendall(b"\r\n")
        assert _read_until(sock, b"* BAD") == b"* BAD Missing or invalid tag\r\n"
        sock.sendall(b"a FROB\r\n")
        assert _read_until(sock, b"a ") == b"a BAD Unknown command FROB\r\n"
        sock.sendall(b'b LOGIN "unterminated\r\n')
        assert _read_until(sock, b"b ").startswith(b"b BAD Syntax error")
        assert _read_until(sock, b"* BYE") == b"* BYE Too many invalid commands\r\n"
        assert sock.recv(100) == b""


def test_idle_timeout_logs_out(tmp_path: Path, ca) -> None:
    for imap in imap_sandbox(tmp_path, ca, idle_timeout=0.3):
        sock = raw_session(imap)
        assert _read_until(sock, b"* BYE") == b"* BYE Autologout; idle for too long\r\n"


def test_server_survives_an_internal_error(imap: ImapSandbox, monkeypatch) -> None:
    from sandbox.imap.session import Session

    async def boom(self, cmd):
        raise RuntimeError("boom")

    monkeypatch.setattr(Session, "do_namespace", boom)
    sock = raw_session(imap)
    sock.sendall(b"a NAMESPACE\r\n")
    assert _read_until(sock, b"* BYE") == b"* BYE Internal server error; please reconnect\r\n"
    monkeypatch.undo()
    assert imap.client(LARRY).noop()[0] == "OK"


def test_concurrent_appends_get_ascending_uids(imap: ImapSandbox) -> None:
    def append(n: int) -> None:
        client = imap.client(LARRY)
        for i in range(10):
            assert (
                client.append("INBOX", None, None, f"Subject: {n}-{i}\r\n\r\n".encode())[0] == "OK"
            )

    threads = [threading.Thread(target=append, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client = imap.client(LARRY)
    client.select("INBOX")
    assert client.uid("SEARCH", None, "ALL")[1][0] == b" ".join(b"%d" % i for i in range(1, 41))
