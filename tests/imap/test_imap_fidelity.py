"""Issue 17 parser points over a real socket: the command cap before and after login,
the tag of an over-long line, mailbox names, SEARCH CHARSET aliases, ``~`` atoms."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.imap.conftest import ImapSandbox, imap_sandbox

LARRY = "larry@beta.test"


@pytest.fixture
def small(tmp_path: Path, ca: trustme.CA) -> Iterator[ImapSandbox]:
    yield from imap_sandbox(
        tmp_path,
        ca,
        max_line_length=4096,
        max_command_size=8000,
        max_command_size_before_login=1000,
    )


def read_until(sock: socket.socket, tag: bytes) -> bytes:
    data = b""
    while not any(line.startswith(tag + b" ") for line in data.split(b"\r\n")):
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return data


def tagged(data: bytes, tag: bytes) -> bytes:
    [line] = [line for line in data.split(b"\r\n") if line.startswith(tag + b" ")]
    return line


def test_command_cap_is_low_before_login_and_higher_after(small: ImapSandbox) -> None:
    sock = small.raw()
    read_until(sock, b"*")
    chunk = b"x" * 900
    # Two LITERAL+ of 900 octets: each fits any literal limit, together over 1000.
    sock.sendall(b"a LOGIN {900+}\r\n" + chunk + b" {900+}\r\n" + chunk + b"\r\nb NOOP\r\n")
    data = read_until(sock, b"b")
    assert tagged(data, b"a").startswith(b"a NO [TOOBIG] Command longer than 1000 octets")
    assert tagged(data, b"b") == b"b OK NOOP completed"
    sock.sendall(b"c LOGIN " + LARRY.encode() + b" pw\r\n")
    assert tagged(read_until(sock, b"c"), b"c").startswith(b"c OK")
    # Logged in, the same two literals fit; over 8000 in all still does not.
    sock.sendall(b"d STATUS {900+}\r\n" + chunk + b" (MESSAGES)\r\n")
    assert tagged(read_until(sock, b"d"), b"d").startswith(b"d NO")  # no such folder: parsed
    big = b"e APPEND INBOX {5000+}\r\n" + b"y" * 5000 + b" {5000+}\r\n" + b"z" * 5000 + b"\r\n"
    sock.sendall(big + b"f NOOP\r\n")
    data = read_until(sock, b"f")
    assert tagged(data, b"e").startswith(b"e NO [TOOBIG] Command longer than 8000 octets")
    assert tagged(data, b"f") == b"f OK NOOP completed"


def test_over_long_line_gets_an_untagged_bad_not_its_own_echo(small: ImapSandbox) -> None:
    sock = small.raw()
    read_until(sock, b"*")
    sock.sendall(b"A" * 10000 + b"\r\nb NOOP\r\n")
    data = read_until(sock, b"b")
    assert b"* BAD Line longer than 4096 octets\r\n" in data
    assert len(data) < 200


def test_bad_mailbox_names_are_refused_and_the_session_goes_on(imap: ImapSandbox) -> None:
    sock = imap.raw()
    read_until(sock, b"*")
    sock.sendall(b"a LOGIN " + LARRY.encode() + b" pw\r\n")
    read_until(sock, b"a")
    sock.sendall(b'b CREATE "&Jjo"\r\nc CREATE {3+}\r\na\x00b\r\nd CREATE "&ZeVnLIqe-"\r\n')
    data = read_until(sock, b"d")
    assert tagged(data, b"b").startswith(b"b BAD Syntax error: Mailbox name '&Jjo' is not valid")
    assert tagged(data, b"c") == (
        b"c BAD Syntax error: Mailbox names cannot contain NUL or other control characters"
    )
    assert tagged(data, b"d").startswith(b"d OK")
    folders = imap.sandbox.call(lambda _: imap.imap.backend.folders(LARRY))
    assert {f.name for f in folders} == {"INBOX", "Junk", "Sent", "Trash", "日本語"}


@pytest.mark.parametrize("charset", ["utf8", "UTF8", "utf-8", "US-ASCII", "us-ascii"])
def test_search_charset_aliases_are_accepted(imap: ImapSandbox, charset: str) -> None:
    imap.deliver(LARRY, "über")
    client = imap.client(LARRY)
    client.select("INBOX")
    status, data = client.search(charset, "ALL")
    assert status == "OK" and data == [b"1"]


def test_unknown_search_charset_is_still_badcharset(imap: ImapSandbox) -> None:
    client = imap.client(LARRY)
    client.select("INBOX")
    typ, data = client._simple_command("SEARCH", "CHARSET", "x-klingon", "ALL")  # type: ignore[attr-defined]
    assert typ == "NO" and b"[BADCHARSET" in data[-1]


def test_list_with_a_tilde_pattern(imap: ImapSandbox) -> None:
    client = imap.client(LARRY)
    assert client.create("~archive")[0] == "OK"
    status, data = client.list('""', "~arch*")
    assert status == "OK" and data == [b'(\\HasNoChildren) "/" ~archive']
