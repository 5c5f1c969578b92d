"""The POP3 codec with bytes alone: line splitting, limits, replies, dot-stuffing."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from sandbox.pop3.codec import (
    NEED_DATA,
    Command,
    LineTooLong,
    Pop3Codec,
    dot_stuff,
    err,
    multiline,
    ok,
    to_wire,
    top,
)


def drain(codec: Pop3Codec) -> list[object]:
    out = []
    while (item := codec.next_command()) is not NEED_DATA:
        out.append(item)
    return out


def test_commands_split_across_packets_and_pipelined() -> None:
    codec = Pop3Codec()
    codec.receive_data(b"us")
    assert codec.next_command() is NEED_DATA
    codec.receive_data(b"er Larry@Beta.test\r\nSTAT\r\nLIST 1\nRETR")
    assert drain(codec) == [
        Command("USER", ("Larry@Beta.test",), b"user Larry@Beta.test"),
        Command("STAT", (), b"STAT"),
        Command("LIST", ("1",), b"LIST 1"),
    ]
    codec.receive_data(b" 2\r\n")
    assert drain(codec) == [Command("RETR", ("2",), b"RETR 2")]


def test_empty_line_and_binary_garbage_are_unknown_commands() -> None:
    codec = Pop3Codec()
    codec.receive_data(b"\r\n\xff\xfe\x00garbage\r\n")
    empty, garbage = drain(codec)
    assert isinstance(empty, Command) and empty.name == ""
    assert isinstance(garbage, Command) and garbage.name not in {"USER", "PASS", "QUIT"}


def test_overlong_line_is_dropped_up_to_its_lf_without_buffering_it() -> None:
    codec = Pop3Codec(max_line=64)
    for _ in range(100):
        codec.receive_data(b"x" * 1000)
        assert codec.next_command() is NEED_DATA
        assert codec.buffered <= 64
    codec.receive_data(b"tail\r\nNOOP\r\n")
    assert drain(codec) == [LineTooLong(64), Command("NOOP", (), b"NOOP")]


def test_line_at_the_limit_is_accepted_one_over_is_not() -> None:
    codec = Pop3Codec(max_line=16)
    exact = b"USER " + b"a" * 9 + b"\r\n"
    assert len(exact) == 16
    codec.receive_data(exact + b"USER " + b"a" * 10 + b"\r\n")
    first, second = drain(codec)
    assert isinstance(first, Command) and first.args == ("a" * 9,)
    assert second == LineTooLong(16)


def test_discard_buffer_forgets_injected_plaintext() -> None:
    codec = Pop3Codec()
    codec.receive_data(b"USER evil@beta.test\r\nPASS x\r\n")
    codec.discard_buffer()
    assert codec.next_command() is NEED_DATA


def test_replies() -> None:
    assert ok() == b"+OK\r\n"
    assert ok("2 320") == b"+OK 2 320\r\n"
    assert err("maildrop busy", "IN-USE") == b"-ERR [IN-USE] maildrop busy\r\n"
    assert err("no such message") == b"-ERR no such message\r\n"


def test_multiline_dot_stuffs_and_terminates() -> None:
    raw = b".first\nmiddle\r\n..two\n.\nlast"
    assert multiline(raw) == b"+OK\r\n..first\r\nmiddle\r\n...two\r\n..\r\nlast\r\n.\r\n"
    assert multiline([b"1 10", b".x"], b"+OK list\r\n") == b"+OK list\r\n1 10\r\n..x\r\n.\r\n"
    assert multiline(b"") == b"+OK\r\n.\r\n"


def test_top_keeps_header_blank_line_and_n_body_lines() -> None:
    raw = b"Subject: a\nTo: b\n\nl1\nl2\nl3\n"
    assert top(raw, 0) == b"Subject: a\r\nTo: b\r\n\r\n"
    assert top(raw, 2) == b"Subject: a\r\nTo: b\r\n\r\nl1\r\nl2\r\n"
    assert top(raw, 99) == to_wire(raw)
    assert top(b"Subject: only header", 3) == b"Subject: only header\r\n"


def unstuff(reply: bytes) -> bytes:
    """What a client gets back: drop the status line and the final dot, unstuff."""
    body = reply.split(b"\r\n", 1)[1]
    assert body.endswith(b".\r\n")
    body = body[:-3]
    return re.sub(rb"(?m)^\.\.", b".", body)


@given(st.binary(max_size=400))
def test_dot_stuffing_round_trips_and_never_ends_the_reply_early(raw: bytes) -> None:
    reply = multiline(raw)
    assert unstuff(reply) == to_wire(raw)
    lines = reply.split(b"\r\n")
    # the only line that is exactly "." is the terminator
    assert lines.count(b".") == 1 and lines[-2] == b"."


@given(st.lists(st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b".", b".."]), max_size=60))
def test_dot_stuff_doubles_the_dot_at_each_line_start(parts: list[bytes]) -> None:
    wire = to_wire(b"".join(parts))
    assert dot_stuff(wire) == re.sub(rb"(?m)^\.", b"..", wire)


@given(
    st.lists(st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b".", b"\x00", b"\xff"]), max_size=60)
)
def test_to_wire_has_only_crlf_line_ends(parts: list[bytes]) -> None:
    wire = to_wire(b"".join(parts))
    assert wire.count(b"\n") == wire.count(b"\r\n")
    assert not wire or wire.endswith(b"\r\n")
    assert dot_stuff(wire).replace(b"\r\n..", b"\r\n.").count(b"\n") == wire.count(b"\n")


@given(st.binary(max_size=2000), st.integers(min_value=8, max_value=300))
def test_random_bytes_never_raise_and_buffer_stays_bounded(data: bytes, limit: int) -> None:
    codec = Pop3Codec(max_line=limit)
    for start in range(0, len(data), 37):
        codec.receive_data(data[start : start + 37])
        for item in drain(codec):
            assert isinstance(item, Command | LineTooLong)
            if isinstance(item, Command):
                assert len(item.line) < limit
        assert codec.buffered <= limit
