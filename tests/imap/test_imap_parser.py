"""The sans-IO codec with bytes alone: framing, limits, grammar, and property tests."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.imap import utf7
from sandbox.imap.message import parse_message, section_bytes
from sandbox.imap.parser import (
    NEED_DATA,
    Append,
    Fetch,
    FetchAttr,
    ListCommand,
    Login,
    ParseError,
    Parser,
    RawLine,
    Search,
    SearchKey,
    Section,
    SendContinuation,
    SeqRange,
    Store,
    parse_command,
)
from sandbox.imap.response import sequence_set, string


def commands(data: bytes, **limits: int) -> list[object]:
    parser = Parser(**limits)
    parser.receive_data(data)
    out = []
    while (item := parser.next_command()) is not NEED_DATA:
        out.append(item)
    return out


def test_synchronising_literal_asks_once_then_waits() -> None:
    parser = Parser()
    parser.receive_data(b"a LOGIN {5}\r\n")
    assert parser.next_command() == SendContinuation()
    assert parser.next_command() is NEED_DATA
    parser.receive_data(b"larry {2}\r\n")
    assert parser.next_command() == SendContinuation()
    parser.receive_data(b"pw\r\n")
    assert parser.next_command() == Login("a", "LOGIN", "larry", "pw")


def test_literal_plus_needs_no_continuation() -> None:
    [cmd] = commands(b"a APPEND Sent (\\Seen) {3+}\r\nabc\r\n")
    assert cmd == Append("a", "APPEND", "Sent", ("\\Seen",), None, b"abc")


def test_byte_at_a_time() -> None:
    parser = Parser()
    items = []
    for byte in b'x1 SELECT "Old Mail"\r\nx2 NOOP\r\n':
        parser.receive_data(bytes([byte]))
        while (item := parser.next_command()) is not NEED_DATA:
            items.append(item)
    assert [getattr(i, "tag", None) for i in items] == ["x1", "x2"]


def test_limits_refuse_before_reading() -> None:
    [refused] = commands(b"a APPEND INBOX {100}\r\n", max_literal=10)
    assert refused == ParseError(
        "a", "Literal of 100 octets exceeds the limit of 10", "NO", "TOOBIG"
    )
    items = commands(b"b NOOP " + b"x" * 50 + b"\r\nc NOOP\r\n", max_line=20)
    assert isinstance(items[0], ParseError) and items[0].tag == "b"
    assert getattr(items[1], "tag", None) == "c"


def test_raw_lines_for_authenticate_and_idle() -> None:
    parser = Parser()
    parser.receive_data(b"AGxhcnJ5AHB3\r\n")
    parser.expect_raw_line()
    assert parser.next_command() == RawLine(b"AGxhcnJ5AHB3")


def test_fetch_items_and_sections() -> None:
    cmd = parse_command(
        b"t UID FETCH 1:*,7 (UID BODY.PEEK[HEADER.FIELDS (From Subject)]<0.100> BODY[1.2.MIME])\r\n"
    )
    assert isinstance(cmd, Fetch) and cmd.uid
    assert cmd.seqset == (SeqRange(1, None), SeqRange(7, 7))
    assert cmd.attrs == (
        FetchAttr("UID"),
        FetchAttr("BODY", Section((), "HEADER.FIELDS", ("FROM", "SUBJECT")), (0, 100), peek=True),
        FetchAttr("BODY", Section((1, 2), "MIME")),
    )
    assert isinstance(parse_command(b"t FETCH 1 FULL\r\n"), Fetch)


def test_search_grammar() -> None:
    cmd = parse_command(b't SEARCH CHARSET UTF-8 OR FROM "a b" NOT (SEEN 2:4) SINCE 1-Feb-2024\r\n')
    assert isinstance(cmd, Search)
    assert cmd.charset == "UTF-8"
    assert cmd.key == SearchKey(
        "AND",
        (
            SearchKey(
                "OR",
                (
                    SearchKey("FROM", ("a b",)),
                    SearchKey(
                        "NOT",
                        (
                            SearchKey(
                                "AND",
                                (SearchKey("SEEN"), SearchKey("SEQSET", ((SeqRange(2, 4),),))),
                            ),
                        ),
                    ),
                ),
            ),
            SearchKey("SINCE", (date(2024, 2, 1),)),
        ),
    )


def test_store_and_list_forms() -> None:
    assert parse_command(b"t STORE 1 -FLAGS.SILENT \\seen \\Deleted\r\n") == Store(
        "t", "STORE", (SeqRange(1, 1),), "-", True, ("\\Seen", "\\Deleted")
    )
    assert parse_command(b't LIST "" "&ZeVnLIqe-/%"\r\n') == ListCommand(
        "t", "LIST", "", "日本語/%"
    )


@pytest.mark.parametrize(
    ("line", "text"),
    [
        (b"t FETCH 0 FLAGS\r\n", "Syntax error: Expected a sequence set"),
        (b"t FETCH 1 (FLAGS\r\n", "Syntax error: Expected )"),
        (b"t SELECT\r\n", "Syntax error: Expected a space"),
        (b"t STORE 1 FLAGS (\\Seen) extra\r\n", "Syntax error: Unexpected characters"),
        (b"t UID NOOP\r\n", "Unknown command UID NOOP"),
    ],
)
def test_bad_commands(line: bytes, text: str) -> None:
    error = parse_command(line)
    assert isinstance(error, ParseError) and error.tag == "t" and error.text.startswith(text)


@given(st.text())
def test_utf7_round_trip(name: str) -> None:
    assert utf7.decode(utf7.encode(name)) == name


def test_utf7_known_values() -> None:
    assert utf7.encode("~peter/mail/台北/日本語") == "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert utf7.encode("a&b") == "a&-b"


@given(st.lists(st.integers(1, 60), min_size=1))
def test_sequence_set_rendering_parses_back(values: list[int]) -> None:
    rendered = sequence_set(values)
    cmd = parse_command(b"t UID FETCH " + rendered + b" FLAGS\r\n")
    assert isinstance(cmd, Fetch)
    got = {n for r in cmd.seqset for n in range(r.first or 0, (r.last or 0) + 1)}
    assert got == set(values)


# --- properties ------------------------------------------------------------------------

_atoms = st.from_regex(r"\A[A-Za-z0-9$_.-]{1,12}\Z")
_strings = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@st.composite
def login_commands(draw: st.DrawFn) -> tuple[bytes, Login]:
    tag = draw(_atoms)
    user, password = draw(_strings), draw(_strings)
    return (
        tag.encode() + b" LOGIN " + _wire(user) + b" " + _wire(password) + b"\r\n",
        Login(tag, "LOGIN", user, password),
    )


def _wire(text: str) -> bytes:
    data = text.encode()
    if data and all(c.isalnum() for c in text) and text.isascii():
        return data
    return (
        b"{%d+}\r\n" % len(data) + data
        if not data.isascii() or b"\r" in data or b"\n" in data
        else string(text)
    )


@given(login_commands())
def test_generated_commands_round_trip(case: tuple[bytes, Login]) -> None:
    wire, expected = case
    assert commands(wire) == [expected]


@given(
    st.lists(
        st.sampled_from(
            [
                "FLAGS",
                "UID",
                "ENVELOPE",
                "RFC822.SIZE",
                "INTERNALDATE",
                "BODY.PEEK[TEXT]",
                "BODY[1.HEADER]",
                "BODYSTRUCTURE",
            ]
        ),
        min_size=1,
        max_size=5,
    ),
    st.lists(st.tuples(st.integers(1, 99), st.integers(1, 99)), min_size=1, max_size=4),
    st.booleans(),
)
def test_generated_fetches_round_trip(
    items: list[str], ranges: list[tuple[int, int]], uid: bool
) -> None:
    seqset = ",".join(f"{a}:{b}" for a, b in ranges)
    wire = f"f {'UID ' if uid else ''}FETCH {seqset} ({' '.join(items)})\r\n".encode()
    [cmd] = commands(wire)
    assert isinstance(cmd, Fetch) and cmd.uid == uid
    assert cmd.seqset == tuple(SeqRange(a, b) for a, b in ranges)
    assert len(cmd.attrs) == len(items)


@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_codec(data: bytes) -> None:
    parser = Parser(max_line=100, max_literal=50)
    parser.receive_data(data + b"\r\n")
    for _ in range(1000):
        if parser.next_command() is NEED_DATA:
            break


_FRAGMENTS = st.sampled_from(
    [
        b"a ",
        b"LOGIN ",
        b"larry@beta.test ",
        b"x",
        b"SELECT INBOX",
        b"FETCH 1:* ",
        b"(FLAGS",
        b" BODY[]",
        b")",
        b"{3}\r\n",
        b"{2+}\r\n",
        b"\r\n",
        b'"',
        b"\\",
        b"*",
        b"UID ",
        b"SEARCH ",
        b"OR ",
        b"IDLE",
        b"DONE",
        b"STORE 1 +FLAGS (\\Seen)",
        b"APPEND INBOX ",
        b"\x00",
        b"\xff",
    ]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_FRAGMENTS, max_size=8).map(b"".join), max_size=10))
def test_random_transcripts_never_crash_a_session(chunks: list[bytes]) -> None:
    """Whatever arrives, every reply is well-formed and no exception escapes."""
    asyncio.run(_transcript(chunks))


async def _transcript(chunks: list[bytes]) -> None:
    from sandbox.events import EventBus
    from sandbox.imap.backend import ImapBackend
    from sandbox.imap.session import ImapSettings, Session
    from sandbox.store import SqliteStore

    store = await SqliteStore.open(":memory:")
    out: list[bytes] = []

    async def send(data: bytes) -> None:
        out.append(data)

    backend = ImapBackend(store, EventBus())
    session = Session(backend, ImapSettings(), send)
    parser = Parser(max_line=200, max_literal=100)
    try:
        await session.execute(parse_command(b"l LOGIN larry@beta.test x\r\n"))  # type: ignore[arg-type]
        for chunk in chunks:
            parser.receive_data(chunk)
            while (item := parser.next_command()) is not NEED_DATA:
                if isinstance(item, ParseError):
                    out.append(item.render())
                elif isinstance(item, RawLine):
                    await session.raw_line(item.data)
                elif isinstance(item, SendContinuation):
                    out.append(b"+ go\r\n")
                else:
                    await session.execute(item)  # type: ignore[arg-type]
                if session.wants_raw_line:
                    parser.expect_raw_line()
    finally:
        await session.flush()
        await session.close()
        await store.close()
    for line in b"".join(out).split(b"\r\n"):
        assert not line or line[:1] in (b"*", b"+", b"l") or b" " in line


def test_sections_of_a_nested_message() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=X\r\n\r\npre\r\n--X\r\n"
        b"Content-Type: text/plain\r\n\r\none\r\n--X\r\nContent-Type: message/rfc822\r\n\r\n"
        b"Subject: inner\r\nContent-Type: multipart/alternative; boundary=Y\r\n\r\n--Y\r\n\r\n"
        b"a\r\n--Y\r\nContent-Type: text/html\r\n\r\n<b>\r\n--Y--\r\n\r\n--X--\r\n"
    )
    msg = parse_message(raw)
    assert section_bytes(msg, (1,), None, ()) == b"one"
    assert section_bytes(msg, (1,), "MIME", ()) == b"Content-Type: text/plain\r\n\r\n"
    assert section_bytes(msg, (2,), "HEADER", ()).startswith(b"Subject: inner\r\n")
    assert section_bytes(msg, (2, 2), None, ()) == b"<b>"
    assert section_bytes(msg, (2, 1), None, ()) == b"a"
    from sandbox.imap.response import bodystructure

    structure = bodystructure(msg)
    assert b'"MESSAGE" "RFC822"' in structure and b'"ALTERNATIVE"' in structure
