"""MAIL FROM and RCPT TO arguments, parsed the way a strict production MTA does (sans-IO).

RFC 5321 §4.1.2 paths (``<local@domain>``, ``<>`` for the null sender, source routes
accepted and dropped, §4.1.1.3 ``<Postmaster>``), RFC 6531 §3.3 UTF-8 addresses only
with the SMTPUTF8 parameter, and the parameters the sandbox offers: SIZE (RFC 1870),
BODY (RFC 6152, RFC 3030 BINARYMIME), SMTPUTF8, and DSN's RET, ENVID, NOTIFY and ORCPT
(RFC 3461 §4). A refusal carries its whole reply, with the RFC 3463 code and what was
wrong. ``strict=False`` is the lenient behaviour of old: paths without brackets, UTF-8
addresses without SMTPUTF8; control characters are refused either way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sandbox.smtp.replies import too_big

MAIL_SYNTAX = "MAIL FROM:<name@domain>"
RCPT_SYNTAX = "RCPT TO:<name@domain>"
BODY_TYPES = ("7BIT", "8BITMIME", "BINARYMIME")
NOTIFY_EVENTS = ("SUCCESS", "FAILURE", "DELAY")
# RFC 3461 §4.4: ENVID is at most 100 characters; §4.2 ORCPT's address at most 500.
MAX_ENVID = 100
MAX_ORCPT = 500


class Refused(ValueError):
    """The argument is refused; ``reply`` is the whole SMTP reply to send."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


@dataclass(frozen=True)
class MailParams:
    size: int | None = None
    body: str = "7BIT"
    smtputf8: bool = False
    ret: str | None = None  # FULL or HDRS (RFC 3461 §4.3)
    envid: str | None = None  # decoded from xtext (RFC 3461 §4.4)
    options: tuple[str, ...] = ()  # the parameters as sent, for the handler hooks


@dataclass(frozen=True)
class RcptParams:
    notify: tuple[str, ...] = ()  # () when not given; ("NEVER",) or some of NOTIFY_EVENTS
    orcpt: str | None = None  # "rfc822;bob@beta.test", decoded from xtext (RFC 3461 §4.2)
    options: tuple[str, ...] = ()


# RFC 5321 §4.1.2 and RFC 5322 §3.2.3 atext; RFC 6531 §3.3 adds UTF-8 (checked apart).
_UTF8 = "\u0080-\ud7ff\ue000-\U0010ffff"  # any character but a surrogate (undecodable bytes)
_ATEXT = rf"[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~\-{_UTF8}]"
_DOT_STRING = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_QUOTED = rf'"(?:[\x20\x21\x23-\x5b\x5d-\x7e{_UTF8}]|\\[\x20-\x7e])*"'
_LABEL = rf"[A-Za-z0-9{_UTF8}](?:[A-Za-z0-9\-{_UTF8}]*[A-Za-z0-9{_UTF8}])?"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"
_ADDRESS_LITERAL = r"\[[\x21-\x5a\x5e-\x7e]+\]"
_MAILBOX = re.compile(rf"(?:{_DOT_STRING}|{_QUOTED})@(?:{_DOMAIN}|{_ADDRESS_LITERAL})")
_SOURCE_ROUTE = re.compile(rf"@{_DOMAIN}(?:,@{_DOMAIN})*:")
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]*")
_XTEXT_HEX = re.compile(r"\+([0-9A-F]{2})")


def _control(text: str) -> str | None:
    for char in text:
        if ord(char) < 0x20 or ord(char) == 0x7F:
            name = "a NUL byte" if char == "\0" else "a control character"
            return f"{name} (0x{ord(char):02X})"
    return None


def _path(arg: str, *, code: str, syntax: str, strict: bool, null_ok: bool) -> tuple[str, str]:
    """Split ``<path> params``; return (mailbox or "<>", params text)."""

    role = "sender" if null_ok else "recipient"

    def bad(reason: str) -> Refused:
        return Refused(f"501 {code} Bad {role} address syntax: {reason}; write it as {syntax}")

    problem = _control(arg)
    if problem:
        raise bad(f"it contains {problem}")
    if not arg.startswith("<"):
        if strict:
            raise bad("the address must be in angle brackets (RFC 5321 §4.1.2)")
        address, _, rest = arg.partition(" ")
        return address, rest.strip()
    end = _closing_bracket(arg)
    if end < 0:
        if strict:
            raise bad("no closing '>'")
        address, _, rest = arg[1:].partition(" ")
        return address.rstrip(">"), rest.strip()
    inner, rest = arg[1:end], arg[end + 1 :]
    if rest and not rest.startswith(" "):
        raise bad(f"unexpected {rest[:20]!r} after '>'")
    if inner == "":
        if not null_ok:
            raise bad("<> is a sender, never a recipient")
        return "<>", rest.strip()
    route = _SOURCE_ROUTE.match(inner)
    if route:  # RFC 5321 §4.1.1.3 / Appendix C: accepted, and ignored
        inner = inner[route.end() :]
    postmaster = not null_ok and inner.lower() == "postmaster"  # RFC 5321 §4.1.1.3
    if strict and not _MAILBOX.fullmatch(inner) and not postmaster:
        raise bad(f"<{inner}> is not an address like name@domain")
    return inner, rest.strip()


def _closing_bracket(arg: str) -> int:
    """Index of the '>' that ends the path, skipping quoted local parts."""
    quoted = escaped = False
    for index, char in enumerate(arg):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return index
    return -1


def _params(text: str) -> dict[str, tuple[str, str | None]]:
    """``KEY=value KEY`` → {KEY: (original keyword, value or None)}; duplicates refused."""
    out: dict[str, tuple[str, str | None]] = {}
    for item in text.split():
        keyword, eq, value = item.partition("=")
        if not _KEYWORD.fullmatch(keyword) or (eq and not value):
            raise Refused(
                f"501 5.5.4 Bad parameter {item[:40]!r}: expected KEYWORD or KEYWORD=value"
            )
        key = keyword.upper()
        if key in out:
            raise Refused(f"501 5.5.4 Parameter {key} given twice")
        out[key] = (keyword, value if eq else None)
    return out


def xtext_decode(value: str, what: str) -> str:
    """RFC 3461 §4: ``+XX`` is the octet XX; ``+`` and ``=`` never stand for themselves."""
    if any(not 0x21 <= ord(c) <= 0x7E or c == "=" for c in value) or re.search(
        r"\+(?![0-9A-F]{2})", value
    ):
        raise Refused(f"501 5.5.4 {what} is not valid xtext (RFC 3461 §4): {value[:40]!r}")
    return _XTEXT_HEX.sub(lambda m: chr(int(m.group(1), 16)), value)


def xtext_encode(value: str) -> str:
    return "".join(
        c if 0x21 <= ord(c) <= 0x7E and c not in "+=" else "".join(f"+{b:02X}" for b in c.encode())
        for c in value
    )


def parse_mail(
    arg: str, *, strict: bool = True, esmtp: bool = True, size_limit: int | None = None
) -> tuple[str, MailParams]:
    """The argument after ``MAIL FROM:``; raises ``Refused``."""
    address, rest = _path(arg, code="5.1.7", syntax=MAIL_SYNTAX, strict=strict, null_ok=True)
    if rest and not esmtp:
        raise Refused("501 5.5.4 Parameters after MAIL FROM need EHLO, not HELO")
    params = _params(rest)
    size: int | None = None
    body = "7BIT"
    smtputf8 = False
    ret = envid = None
    for key, (_, value) in params.items():
        if key == "SIZE":
            if value is None or not value.isdigit():
                raise Refused("501 5.5.4 SIZE takes the message size in octets: SIZE=12345")
            size = int(value)
            if size_limit and size > size_limit:
                raise Refused(too_big(size_limit))
        elif key == "BODY":
            body = (value or "").upper()
            if body not in BODY_TYPES:
                raise Refused(f"501 5.5.4 BODY is one of {', '.join(BODY_TYPES)}, not {value!r}")
        elif key == "SMTPUTF8":
            if value is not None:
                raise Refused("501 5.5.4 SMTPUTF8 takes no value")
            smtputf8 = True
        elif key == "RET":
            ret = (value or "").upper()
            if ret not in ("FULL", "HDRS"):
                raise Refused("501 5.5.4 RET is FULL or HDRS (RFC 3461 §4.3)")
        elif key == "ENVID":
            envid = xtext_decode(value or "", "ENVID")
            if not envid or len(envid) > MAX_ENVID:
                raise Refused(f"501 5.5.4 ENVID is 1 to {MAX_ENVID} characters (RFC 3461 §4.4)")
        else:
            raise Refused(f"555 5.5.4 MAIL FROM parameter {key} is not supported here")
    if strict:
        _check_utf8(address, smtputf8, "5.6.7", "sender")
    return address, MailParams(size, body, smtputf8, ret, envid, tuple(rest.split()))


def parse_rcpt(
    arg: str, *, strict: bool = True, esmtp: bool = True, smtputf8: bool = False
) -> tuple[str, RcptParams]:
    """The argument after ``RCPT TO:``; ``smtputf8``: MAIL FROM had SMTPUTF8."""
    address, rest = _path(arg, code="5.1.3", syntax=RCPT_SYNTAX, strict=strict, null_ok=False)
    if rest and not esmtp:
        raise Refused("501 5.5.4 Parameters after RCPT TO need EHLO, not HELO")
    params = _params(rest)
    notify: tuple[str, ...] = ()
    orcpt: str | None = None
    for key, (_, value) in params.items():
        if key == "NOTIFY":
            events = tuple((value or "").upper().split(","))
            if events != ("NEVER",) and (
                not events
                or any(e not in NOTIFY_EVENTS for e in events)
                or len(set(events)) < len(events)
            ):
                raise Refused(
                    "501 5.5.4 NOTIFY is NEVER, or one or more of SUCCESS,FAILURE,DELAY"
                    " (RFC 3461 §4.1)"
                )
            notify = events
        elif key == "ORCPT":
            kind, semi, original = (value or "").partition(";")
            if not semi or not _KEYWORD.fullmatch(kind) or not original:
                raise Refused("501 5.5.4 ORCPT is addr-type;address, like rfc822;bob@beta.test")
            decoded = xtext_decode(original, "ORCPT")
            if len(decoded) > MAX_ORCPT:
                raise Refused(f"501 5.5.4 ORCPT address longer than {MAX_ORCPT} characters")
            orcpt = f"{kind.lower()};{decoded}"
        else:
            raise Refused(f"555 5.5.4 RCPT TO parameter {key} is not supported here")
    if strict:
        _check_utf8(address, smtputf8, "5.6.7", "recipient")
    return address, RcptParams(notify, orcpt, tuple(rest.split()))


def _check_utf8(address: str, smtputf8: bool, code: str, role: str) -> None:
    """RFC 6531 §3.5: a non-ASCII address without SMTPUTF8 gets 553 5.6.7."""
    if not smtputf8 and not address.isascii():
        raise Refused(
            f"553 {code} The {role} <{address}> is not ASCII: send MAIL FROM:<…> SMTPUTF8"
            " for UTF-8 addresses (RFC 6531)"
        )


def parse_bdat(arg: str | None) -> tuple[int, bool] | Refused:
    """``BDAT chunk-size [LAST]`` (RFC 3030 §2) → (size, last), or the refusal."""
    words = (arg or "").split()
    if not 1 <= len(words) <= 2 or not words[0].isdigit() or len(words[0]) > 18:
        return Refused("501 5.5.4 Syntax: BDAT chunk-size [LAST]")
    if len(words) == 2 and words[1].upper() != "LAST":
        return Refused("501 5.5.4 Syntax: BDAT chunk-size [LAST]")
    return int(words[0]), len(words) == 2
