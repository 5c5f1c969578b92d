"""Pure renderers for IMAP response data (RFC 3501 §7, §9): values in, bytes out."""

from __future__ import annotations

import email.utils
from collections.abc import Iterable
from datetime import UTC, datetime

from sandbox.imap import utf7
from sandbox.imap.message import Part

_QUOTABLE_MAX = 1024
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

Item = bytes  # one already-rendered value


def string(value: str | bytes) -> bytes:
    """§4.3: a quoted string when it fits, else a literal; 8-bit text is always a literal."""
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    if len(data) <= _QUOTABLE_MAX and all(0x20 <= b < 0x7F for b in data):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return literal(data)


def literal(data: bytes) -> bytes:
    return b"{%d}\r\n" % len(data) + data


def nstring(value: str | bytes | None) -> bytes:
    return b"NIL" if value is None else string(value)


def astring(value: str) -> bytes:
    """An atom when every character allows it, else a string (for mailbox names)."""
    if value and all(c.isascii() and (c.isalnum() or c in "-_./@+&,:=!#$'~^`|") for c in value):
        return value.encode("ascii")
    return string(value)


def mailbox(name: str) -> bytes:
    """§5.1.3: names go out in modified UTF-7."""
    return astring(utf7.encode(name))


def number(value: int) -> bytes:
    return str(value).encode("ascii")


def plist(items: Iterable[bytes]) -> bytes:
    return b"(" + b" ".join(items) + b")"


def flags(values: Iterable[str]) -> bytes:
    return b"(" + " ".join(values).encode("utf-8", "replace") + b")"


def sequence_set(values: Iterable[int]) -> bytes:
    """Ascending numbers compressed into ranges: 1:3,7 (UIDPLUS response codes)."""
    out: list[str] = []
    run_start: int | None = None
    prev = 0
    for value in sorted(values):
        if run_start is None:
            run_start = prev = value
        elif value == prev + 1:
            prev = value
        else:
            out.append(f"{run_start}:{prev}" if prev != run_start else str(run_start))
            run_start = prev = value
    if run_start is not None:
        out.append(f"{run_start}:{prev}" if prev != run_start else str(run_start))
    return ",".join(out).encode("ascii")


def internaldate(timestamp: float) -> bytes:
    """§9 date-time, in UTC: ``"17-Jul-1996 02:44:25 +0000"``."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return (
        f'"{moment.day:02d}-{_MONTHS[moment.month - 1]}-{moment.year:04d}'
        f' {moment.hour:02d}:{moment.minute:02d}:{moment.second:02d} +0000"'
    ).encode("ascii")


# --- ENVELOPE ---------------------------------------------------------------------------


def _addresses(value: str | None) -> bytes:
    """§7.4.2 address lists: (name adl mailbox host); groups flattened, empty → NIL."""
    if value is None:
        return b"NIL"
    items = []
    for name, addr in email.utils.getaddresses([value]):
        if not addr and not name:
            continue
        local, at, host = addr.rpartition("@")
        if not at:
            local, host = addr, ""
        items.append(
            plist(
                (
                    nstring(name or None),
                    b"NIL",
                    nstring(local or None),
                    nstring(host or None),
                )
            )
        )
    return b"(" + b"".join(items) + b")" if items else b"NIL"


def envelope(msg: Part) -> bytes:
    """§7.4.2 ENVELOPE; Sender and Reply-To default to From."""
    sender = msg.get("from")
    return plist(
        (
            nstring(msg.get("date")),
            nstring(msg.get("subject")),
            _addresses(sender),
            _addresses(msg.get("sender") or sender),
            _addresses(msg.get("reply-to") or sender),
            _addresses(msg.get("to")),
            _addresses(msg.get("cc")),
            _addresses(msg.get("bcc")),
            nstring(msg.get("in-reply-to")),
            nstring(msg.get("message-id")),
        )
    )


# --- BODYSTRUCTURE ----------------------------------------------------------------------


def _param_list(params: dict[str, str]) -> bytes:
    if not params:
        return b"NIL"
    return plist(string(v) for k, v in params.items() for v in (k.upper(), v))


def _disposition(part: Part) -> bytes:
    from sandbox.imap.message import parse_params

    value = part.get("content-disposition")
    if not value:
        return b"NIL"
    kind, params = parse_params(value)
    return plist((string(kind.upper() or "ATTACHMENT"), _param_list(params)))


def _language(part: Part) -> bytes:
    value = part.get("content-language")
    if not value:
        return b"NIL"
    tags = [t.strip() for t in value.split(",") if t.strip()]
    return plist(string(t) for t in tags) if tags else b"NIL"


def _line_count(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def bodystructure(part: Part, *, extensible: bool = True) -> bytes:
    """§7.4.2 BODYSTRUCTURE (extensible) or BODY (without extension data)."""
    maintype, subtype, params = part.content_type
    if part.is_multipart:
        children = b"".join(bodystructure(p, extensible=extensible) for p in part.parts)
        items = [children, string(subtype.upper())]
        if extensible:
            items += [
                _param_list(params),
                _disposition(part),
                _language(part),
                nstring(part.get("content-location")),
            ]
        return b"(" + b" ".join(items) + b")"
    encoding = (part.get("content-transfer-encoding") or "7BIT").strip().upper()
    items = [
        string(maintype.upper()),
        string(subtype.upper()),
        _param_list(params),
        nstring(part.get("content-id")),
        nstring(part.get("content-description")),
        string(encoding),
        number(len(part.body)),
    ]
    if part.message is not None:
        items += [
            envelope(part.message),
            bodystructure(part.message, extensible=extensible),
            number(_line_count(part.body)),
        ]
    elif maintype == "text":
        items.append(number(_line_count(part.body)))
    if extensible:
        items += [
            nstring(part.get("content-md5")),
            _disposition(part),
            _language(part),
            nstring(part.get("content-location")),
        ]
    return plist(items)


def partial(data: bytes, window: tuple[int, int] | None) -> bytes:
    """§6.4.5 ``<origin.count>``: a slice; past the end is the empty string."""
    if window is None:
        return data
    origin, count = window
    return data[origin : origin + count]


def body_item(name: str, data: bytes | None) -> bytes:
    """``BODY[1.TEXT]<0> {n}…`` — always a literal, the usual for message data."""
    return name.encode("ascii") + b" " + (b"NIL" if data is None else literal(data))
