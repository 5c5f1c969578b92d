"""Issue 17's RFC 3501 points, byte for byte over a real socket: folder lifecycle
(CREATE does not subscribe, a name created again gets a new UIDVALIDITY) and keywords
announced with FLAGS/PERMANENTFLAGS before any FETCH shows them (§7.2.6)."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import trustme

from tests.imap.conftest import ImapSandbox, imap_sandbox
from tests.imap.test_imap_fidelity import read_until, tagged

LARRY = "larry@beta.test"


def login(imap: ImapSandbox) -> socket.socket:
    sock = imap.raw()
    read_until(sock, b"*")
    sock.sendall(b"l LOGIN " + LARRY.encode() + b" pw\r\n")
    assert tagged(read_until(sock, b"l"), b"l").startswith(b"l OK")
    return sock


def run(sock: socket.socket, tag: bytes, command: bytes) -> bytes:
    sock.sendall(tag + b" " + command + b"\r\n")
    data = read_until(sock, tag)
    assert tagged(data, tag).startswith(tag + b" OK"), data
    return data


def test_create_does_not_subscribe(imap: ImapSandbox) -> None:
    sock = login(imap)
    run(sock, b"a", b"CREATE Projects")
    assert b"Projects" not in run(sock, b"b", b'LSUB "" "*"')
    assert b'* LIST (\\HasNoChildren) "/" Projects' in run(sock, b"c", b'LIST "" "*"')
    run(sock, b"d", b"SUBSCRIBE Projects")
    assert b'* LSUB (\\HasNoChildren) "/" Projects' in run(sock, b"e", b'LSUB "" "*"')


def test_a_name_created_again_gets_a_new_uidvalidity(imap: ImapSandbox) -> None:
    sock = login(imap)
    seen = []
    for n in range(3):  # within one second: the clock alone would repeat itself
        run(sock, b"c%d" % n, b"CREATE Again")
        status = run(sock, b"s%d" % n, b"STATUS Again (UIDVALIDITY UIDNEXT)")
        match = re.search(rb"\* STATUS Again \(UIDVALIDITY (\d+) UIDNEXT 1\)", status)
        assert match, status
        seen.append(int(match[1]))
        run(sock, b"d%d" % n, b"DELETE Again")
    assert len(set(seen)) == 3, seen


def test_new_keywords_are_announced_before_fetch_flags_shows_them(imap: ImapSandbox) -> None:
    imap.deliver(LARRY)
    mine, other = login(imap), login(imap)
    selected = run(mine, b"a", b"SELECT INBOX")
    assert b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n" in selected
    run(other, b"a", b"SELECT INBOX")
    data = run(mine, b"b", b"STORE 1 +FLAGS ($Label1)")
    flags = b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1)\r\n"
    permanent = b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)]"
    assert data.index(flags) < data.index(permanent) < data.index(b"* 1 FETCH (FLAGS (")
    assert b"$Label1" in data.split(b"* 1 FETCH")[1]
    # The other session hears of the keyword the same way, before the flag change itself.
    data = run(other, b"b", b"NOOP")
    assert data.index(flags) < data.index(permanent) < data.index(b"* 1 FETCH (UID ")
    # Told once: a second message with it brings no second FLAGS.
    data = run(mine, b"c", b"STORE 1 -FLAGS ($Label1)")
    data += run(mine, b"d", b"STORE 1 +FLAGS ($Label1)")
    assert b"* FLAGS" not in data


def test_a_keyword_that_comes_with_append_is_announced(imap: ImapSandbox) -> None:
    mine = login(imap)
    run(mine, b"a", b"SELECT INBOX")
    message = b"Subject: hi\r\n\r\nbody\r\n"
    data = run(mine, b"b", b"APPEND INBOX ($Work) {%d+}\r\n" % len(message) + message)
    data += run(mine, b"c", b"FETCH 1 FLAGS")
    assert b"$Work)\r\n" in data
    assert data.index(b"* FLAGS (") < data.index(b"* 1 FETCH (FLAGS ($Work")


def test_appending_to_sent_what_is_filed_there_keeps_one_copy(imap: ImapSandbox) -> None:
    imap.deliver(LARRY, subject="report", folder="Sent")  # as the submission server files it
    sock = login(imap)
    message = b"From: larry@beta.test\r\nMessage-ID: <report@alpha.test>\r\n\r\nhi\r\n"
    data = run(sock, b"a", b"APPEND Sent (\\Seen) {%d+}\r\n" % len(message) + message)
    assert re.search(rb"a OK \[APPENDUID \d+ 1\]", data), data
    assert b"MESSAGES 1)" in run(sock, b"b", b"STATUS Sent (MESSAGES)")
    other = b"From: larry@beta.test\r\nMessage-ID: <other@alpha.test>\r\n\r\nhi\r\n"
    run(sock, b"c", b"APPEND Sent {%d+}\r\n" % len(other) + other)
    assert b"MESSAGES 2)" in run(sock, b"d", b"STATUS Sent (MESSAGES)")


def test_dedupe_sent_off_keeps_both(tmp_path: Path, ca: trustme.CA) -> None:
    for imap in imap_sandbox(tmp_path, ca, dedupe_sent=False):
        imap.deliver(LARRY, subject="report", folder="Sent")
        sock = login(imap)
        message = b"Message-ID: <report@alpha.test>\r\n\r\nhi\r\n"
        run(sock, b"a", b"APPEND Sent {%d+}\r\n" % len(message) + message)
        assert b"MESSAGES 2)" in run(sock, b"b", b"STATUS Sent (MESSAGES)")
