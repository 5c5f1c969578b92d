"""Issue 17 parser points with bytes alone: ``~`` atoms, whole-command limits, the tag of
an over-long line, mailbox-name validation and SEARCH CHARSET aliases."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.imap import utf7
from sandbox.imap.parser import (
    NEED_DATA,
    Append,
    ListCommand,
    MailboxCommand,
    ParseError,
    Parser,
    Search,
    SendContinuation,
    SyntaxProblem,
    decode_mailbox,
    parse_command,
)


def drain(parser: Parser) -> list[object]:
    out = []
    while (item := parser.next_command()) is not NEED_DATA:
        out.append(item)
    return out


def commands(data: bytes, **limits: int) -> list[object]:
    parser = Parser(**limits)
    parser.receive_data(data)
    return drain(parser)


# --- "~" is an atom character unless it begins a literal8 ------------------------------


def test_tilde_is_an_ordinary_atom_character() -> None:
    assert parse_command(b'a LIST "" ~foo\r\n') == ListCommand("a", "LIST", "", "~foo")
    assert parse_command(b"a LIST ~ ~/mail/*\r\n") == ListCommand("a", "LIST", "~", "~/mail/*")
    assert parse_command(b"a SELECT ~peter/mail\r\n") == MailboxCommand(
        "a", "SELECT", "~peter/mail"
    )
    assert parse_command(b"a CREATE ~\r\n") == MailboxCommand("a", "CREATE", "~")


def test_tilde_brace_is_still_a_literal8() -> None:
    [cmd] = commands(b"a APPEND INBOX ~{3+}\r\nabc\r\n")
    assert cmd == Append("a", "APPEND", "INBOX", (), None, b"abc")
    parser = Parser()
    parser.receive_data(b'a LIST "" ~{4}\r\n')
    assert parser.next_command() == SendContinuation()
    parser.receive_data(b"~foo\r\n")
    assert parser.next_command() == ListCommand("a", "LIST", "", "~foo")


# --- the size of a whole command --------------------------------------------------------


def test_literals_under_the_literal_limit_cannot_add_up_without_bound() -> None:
    chunk = b"x" * 900
    # Five LITERAL+ of 900 octets each: every one under max_literal, 4.5 KB in all.
    command = b"a LOGIN {900+}\r\n" + chunk + b" {900+}\r\n" + chunk
    command += b"".join(b" {900+}\r\n" + chunk for _ in range(3)) + b"\r\n"
    parser = Parser(max_literal=1000, max_command=2000)
    parser.receive_data(command + b"b NOOP\r\n")
    items = drain(parser)
    assert items[0] == ParseError(
        "a",
        "Command longer than 2000 octets (its lines and literals together);"
        " send less in one command",
        "NO",
        "TOOBIG",
    )
    assert [getattr(i, "tag", None) for i in items[1:]] == ["b"]


def test_a_synchronising_literal_over_the_command_limit_is_refused_before_the_go_ahead() -> None:
    parser = Parser(max_command=100)
    parser.receive_data(b"a LOGIN {60}\r\n")
    assert parser.next_command() == SendContinuation()
    parser.receive_data(b"y" * 60 + b" {60}\r\n")
    refused = parser.next_command()
    assert isinstance(refused, ParseError) and refused.code == "TOOBIG" and refused.tag == "a"
    parser.receive_data(b"b NOOP\r\n")
    assert [getattr(i, "tag", None) for i in drain(parser)] == ["b"]


def test_command_limit_also_bounds_lines_after_literals() -> None:
    parser = Parser(max_command=50, max_line=1000)
    parser.receive_data(b"a LOGIN {4+}\r\nuser " + b"p" * 100 + b"\r\nb NOOP\r\n")
    items = drain(parser)
    assert isinstance(items[0], ParseError) and items[0].tag == "a"
    assert "Command longer than 50 octets" in items[0].text
    assert [getattr(i, "tag", None) for i in items[1:]] == ["b"]


def test_the_command_limit_can_change_between_commands() -> None:
    parser = Parser(max_command=64)
    parser.receive_data(b"a NOOP " + b"z" * 100 + b"\r\n")
    assert isinstance(parser.next_command(), ParseError)
    parser.max_command = 1024  # logged in
    parser.receive_data(b"b NOOP " + b"z" * 100 + b"\r\n")
    assert isinstance(parser.next_command(), ParseError)  # NOOP takes no arguments…
    parser.receive_data(b"c LOGIN {100+}\r\n" + b"u" * 100 + b" pw\r\n")
    assert getattr(parser.next_command(), "tag", None) == "c"  # …but this fits now


@given(
    st.lists(st.integers(0, 300), min_size=1, max_size=12),
    st.integers(64, 2000),
    st.integers(1, 97),
)
def test_buffered_input_never_exceeds_the_command_limit(
    sizes: list[int], limit: int, step: int
) -> None:
    """Whatever literals arrive, in whatever pieces, the parser holds at most one command
    limit plus one read's worth before it answers."""
    wire = b"a LOGIN" + b"".join(b" {%d+}\r\n" % n + b"q" * n for n in sizes) + b"\r\nb NOOP\r\n"
    parser = Parser(max_command=limit, max_line=limit)
    tags = []
    for start in range(0, len(wire), step):
        parser.receive_data(wire[start : start + step])
        assert parser.buffered <= limit + step + 2
        tags += [getattr(item, "tag", None) for item in drain(parser)]
    assert tags[-1] == "b"


# --- the BAD reply to an over-long line ---------------------------------------------------


def test_an_over_long_line_is_not_echoed_back_as_its_tag() -> None:
    [refused] = commands(b"a" * 5000 + b"\r\n", max_line=1000)
    assert isinstance(refused, ParseError)
    assert refused.render() == b"* BAD Line longer than 1000 octets\r\n"
    [refused] = commands(b"a" * 5000, max_line=1000)  # no CRLF yet either
    assert isinstance(refused, ParseError) and refused.tag == "*"
    [refused] = commands(b"t7 NOOP " + b"a" * 5000 + b"\r\n", max_line=1000)
    assert isinstance(refused, ParseError) and refused.tag == "t7"


@given(st.binary(min_size=1100, max_size=3000))
def test_no_refusal_tag_is_longer_than_the_echo_limit(line: bytes) -> None:
    for item in commands(line.replace(b"\r\n", b"") + b"\r\n", max_line=1000):
        if isinstance(item, ParseError):
            assert len(item.tag) <= 64


# --- mailbox names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "text"),
    [
        (b'a CREATE "&Jjo"\r\n', "not valid modified UTF-7"),  # never ended by "-"
        (b'a CREATE "A&B"\r\n', "not valid modified UTF-7"),  # "&" must be "&-"
        (b'a CREATE "&AGE-&AGE-"\r\n', "not valid modified UTF-7"),  # two runs in a row
        (b'a CREATE "&AEE-"\r\n', "not valid modified UTF-7"),  # "A" encoded
        (b'a CREATE "&AAA-"\r\n', "NUL or other control characters"),  # U+0000 encoded
        (b"a CREATE {4}\r\na\x00bc\r\n", "NUL or other control characters"),
        (b"a CREATE {4}\r\na\x07bc\r\n", "NUL or other control characters"),
        (b"a CREATE {4}\r\na\xffbc\r\n", "neither modified UTF-7 nor valid UTF-8"),
        (b'a LIST "" "&Jjo*"\r\n', "not valid modified UTF-7"),
        (b'a RENAME INBOX "&-&"\r\n', "not valid modified UTF-7"),
    ],
)
def test_invalid_mailbox_names_are_refused_with_the_reason(wire: bytes, text: str) -> None:
    [refused] = commands(wire.replace(b"{4}\r\n", b"{4+}\r\n"))
    assert isinstance(refused, ParseError) and refused.status == "BAD" and refused.tag == "a"
    assert text in refused.text


def test_valid_mailbox_names_still_parse() -> None:
    assert parse_command(b'a CREATE "&ZeVnLIqe-"\r\n') == MailboxCommand("a", "CREATE", "日本語")
    assert parse_command(b'a CREATE "Tom &- Jerry"\r\n') == MailboxCommand(
        "a", "CREATE", "Tom & Jerry"
    )
    # 8-bit UTF-8 from clients that skip the encoding is taken as it is.
    assert parse_command('a CREATE "Müll"\r\n'.encode()) == MailboxCommand("a", "CREATE", "Müll")


@given(st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=30))
def test_every_encoded_name_decodes_to_itself(name: str) -> None:
    assert decode_mailbox(utf7.encode(name), pattern=True) in (name, "INBOX")


@given(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30))
def test_a_7bit_name_is_accepted_only_in_its_canonical_form(wire: str) -> None:
    try:
        name = decode_mailbox(wire, pattern=True)
    except SyntaxProblem:
        return
    assert name == "INBOX" or utf7.encode(name) == wire


# --- SEARCH CHARSET ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_name", "canonical"),
    [
        ("utf8", "UTF-8"),
        ("UTF8", "UTF-8"),
        ("utf-8", "UTF-8"),
        ("UTF-8", "UTF-8"),
        ('"utf-8"', "UTF-8"),
        ("US-ASCII", "US-ASCII"),
        ("us-ascii", "US-ASCII"),
        ("ascii", "US-ASCII"),
        ("KOI8-R", "KOI8-R"),
        ("x-unknown", "X-UNKNOWN"),
    ],
)
def test_search_charset_aliases(given_name: str, canonical: str) -> None:
    cmd = parse_command(f"a SEARCH CHARSET {given_name} ALL\r\n".encode())
    assert isinstance(cmd, Search) and cmd.charset == canonical


@pytest.mark.parametrize("split", [None, 3, 7])
def test_a_refused_long_line_drops_the_literal_plus_it_announces(split: int | None) -> None:
    """The LITERAL+ at the end of a refused line arrives anyway: it is not a command."""
    # The 9-octet literal holds what looks like a command; " pw" ends the refused one.
    wire = b"a LOGIN " + b"u" * 200 + b" {9+}\r\nb NOOP\r\nx pw\r\nc NOOP\r\n"
    parser = Parser(max_line=100, max_command=150)
    items: list[object] = []
    pieces = [wire] if split is None else [wire[i : i + split] for i in range(0, len(wire), split)]
    for piece in pieces:
        parser.receive_data(piece)
        items += drain(parser)
    assert isinstance(items[0], ParseError) and items[0].tag == "a"
    assert [getattr(i, "tag", None) for i in items[1:]] == ["c"]
