"""The MAIL/RCPT argument parser with strings alone, and hypothesis over it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.smtp.commands import (
    MailParams,
    RcptParams,
    Refused,
    parse_mail,
    parse_rcpt,
    xtext_decode,
    xtext_encode,
)


def refusal(call: object, *args: object, **kw: object) -> str:
    with pytest.raises(Refused) as caught:
        call(*args, **kw)  # type: ignore[operator]
    return caught.value.reply


def test_paths_and_parameters() -> None:
    assert parse_mail("<a@alpha.test> SIZE=10 BODY=binarymime RET=hdrs ENVID=x+2By") == (
        "a@alpha.test",
        MailParams(
            10,
            "BINARYMIME",
            False,
            "HDRS",
            "x+y",
            ("SIZE=10", "BODY=binarymime", "RET=hdrs", "ENVID=x+2By"),
        ),
    )
    assert parse_mail("<>")[0] == "<>"
    assert parse_rcpt("<b@beta.test> NOTIFY=delay,Success ORCPT=rfc822;B+2Bx@beta.test") == (
        "b@beta.test",
        RcptParams(
            ("DELAY", "SUCCESS"),
            "rfc822;B+x@beta.test",
            ("NOTIFY=delay,Success", "ORCPT=rfc822;B+2Bx@beta.test"),
        ),
    )
    assert parse_rcpt("<Postmaster>")[0] == "Postmaster"


def test_refusals_say_what_was_wrong() -> None:
    assert refusal(parse_mail, "<a\x00@b.test>").startswith(
        "501 5.1.7 Bad sender address syntax: it contains a NUL byte (0x00)"
    )
    assert refusal(parse_rcpt, "<b@beta.test> NOTIFY=NEVER,FAILURE").startswith("501 5.5.4")
    assert refusal(parse_rcpt, "<b@beta.test> NOTIFY=FAILURE NOTIFY=DELAY") == (
        "501 5.5.4 Parameter NOTIFY given twice"
    )
    assert refusal(parse_mail, "<a@b.test> SIZE=99", size_limit=10).startswith("552 5.3.4")
    assert refusal(parse_mail, "<a@b.test> ENVID=a+b").startswith("501 5.5.4 ENVID is not valid")
    assert refusal(parse_mail, "<a@b.test> SIZE=1", esmtp=False).startswith("501 5.5.4")
    assert refusal(parse_rcpt, "<>").startswith("501 5.1.3")


@given(st.text(max_size=80))
def test_any_argument_is_parsed_or_refused_cleanly(arg: str) -> None:
    for strict in (True, False):
        for parse in (parse_mail, parse_rcpt):
            reply = None
            try:
                address, _ = parse(arg, strict=strict)  # type: ignore[operator]
            except Refused as refused:
                reply = refused.reply
            if reply is None:
                assert not any(ord(c) < 0x20 for c in address)
            else:
                assert reply[:3] in ("501", "552", "553", "555")
                assert "\r" not in reply and "\n" not in reply


_LOCAL = st.from_regex(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,10}(\.[A-Za-z0-9_-]{1,5}){0,2}", fullmatch=True
)
_DOMAIN = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?(\.[a-z]{2,6}){1,2}", fullmatch=True)


@given(_LOCAL, _DOMAIN)
def test_every_rfc5321_mailbox_is_accepted(local: str, domain: str) -> None:
    address = f"{local}@{domain}"
    assert parse_mail(f"<{address}>")[0] == address
    assert parse_rcpt(f"<{address}> NOTIFY=FAILURE")[0] == address


@given(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40))
def test_xtext_round_trip(value: str) -> None:
    """RFC 3461 §4: xtext carries ASCII; "+", "=" and space travel as +XX."""
    encoded = xtext_encode(value)
    assert " " not in encoded and "=" not in encoded
    assert xtext_decode(encoded, "x") == value
