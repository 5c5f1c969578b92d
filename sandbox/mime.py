"""Reading messages leniently: whatever arrives must be stored and listed.

On arrival only the header block is parsed (cheap, and a broken body cannot fail the
transaction); every decoder falls back to the raw text when a header is malformed.
Bodies are decoded by hand because ``get_content()`` raises on an unknown charset.
"""

from __future__ import annotations

import email.errors
import email.header
import email.utils
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # email.message and email.parser load when a message is first parsed
    from email.message import EmailMessage, Message
    from email.parser import BytesParser


@cache
def _full_parser() -> BytesParser:
    """``policy.default`` costs ~20 ms to import: the CLI's listings never need it."""
    from email import policy
    from email.parser import BytesParser

    return BytesParser(policy=policy.default)


@dataclass(frozen=True)
class HeaderSummary:
    """What listing and filtering need, read once when a message is stored."""

    from_addr: str | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str | None
    date: str | None  # ISO 8601 when parseable, else the header text
    message_id: str | None
    received_count: int


def summarize(raw: bytes) -> HeaderSummary:
    """Read the listing fields from the header block.

    Hand-rolled on purpose: this runs for every message the SMTP servers accept, and
    ``policy.default`` header objects cost about 0.6 ms a message (compat32 with
    ``getaddresses`` still 60 µs), which showed up as the largest cost of ingest.
    """
    headers = _header_fields(header_block(raw))
    from_list = _addresses(headers.get("from", []))
    return HeaderSummary(
        from_addr=from_list[0] if from_list else None,
        to=_addresses(headers.get("to", [])),
        cc=_addresses(headers.get("cc", [])),
        subject=_decoded(headers["subject"][0]) if "subject" in headers else None,
        date=_date(headers["date"][0]) if "date" in headers else None,
        message_id=_oneline(headers["message-id"][0]) if "message-id" in headers else None,
        received_count=len(headers.get("received", [])),
    )


_WANTED = {"from", "to", "cc", "subject", "date", "message-id", "received"}


def _header_fields(block: bytes) -> dict[str, list[str]]:
    """RFC 5322 §2.2: ``name: value`` lines, a line starting with white space continues."""
    fields: dict[str, list[list[bytes]]] = {}
    current: list[bytes] | None = None
    for line in block.splitlines():
        if not line.strip():
            break
        if line[:1] in (b" ", b"\t"):
            if current is not None:
                current.append(line)
            continue
        name, sep, value = line.partition(b":")
        key = name.strip().lower().decode("ascii", "replace")
        if not sep or key not in _WANTED:
            current = None
            continue
        current = [value]
        fields.setdefault(key, []).append(current)
    return {
        key: [_unescape(b" ".join(parts).decode("ascii", "surrogateescape")) for parts in values]
        for key, values in fields.items()
    }


def received_count(raw: bytes) -> int:
    """How many Received: trace headers a message carries (mail loops, RFC 5321 §6.3)."""
    block = header_block(raw)
    return sum(1 for line in block.splitlines() if line[:9].lower() == b"received:")


def header_block(raw: bytes) -> bytes:
    """Headers only: the body may be huge or broken and is not needed on arrival."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(sep)
        if end != -1:
            return raw[: end + len(sep)]
    return raw


def _unescape(value: str) -> str:
    """Raw 8-bit header bytes (RFC 6532 UTF-8) come out of compat32 as surrogates."""
    unfolded = value.replace("\r\n", "").replace("\n", "")
    try:
        data = unfolded.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return unfolded
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:  # legacy 8-bit header: Latin-1 shows something readable
        return data.decode("latin-1")


def _oneline(value: str) -> str:
    return " ".join(value.split())


def _decoded(value: str) -> str:
    """RFC 2047 encoded-words decoded; an unknown charset leaves the text as it came."""
    try:
        return _oneline(str(email.header.make_header(email.header.decode_header(value))))
    except (LookupError, UnicodeDecodeError, ValueError, email.errors.HeaderParseError):
        return _oneline(value)


_SIMPLE_ADDRESS = re.compile(r"[^\s<>,;:\"()\[\]]+@[^\s<>,;:\"()\[\]]+")
_NEEDS_PARSER = set('"(\\=;:')


def _addresses(values: list[str]) -> tuple[str, ...]:
    """Addresses of From/To/Cc: a regex for the usual shapes, the full parser otherwise."""
    if not any(_NEEDS_PARSER.intersection(v) for v in values):
        return tuple(_SIMPLE_ADDRESS.findall(" ".join(values)))
    return tuple(addr for _, addr in email.utils.getaddresses(values) if addr and "@" in addr)


def _date(text: str) -> str:
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return _oneline(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.isoformat()


# --- bodies -------------------------------------------------------------------------------


def parse(raw: bytes) -> EmailMessage:
    from email.message import EmailMessage

    message = _full_parser().parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def decoded_text(part: Message) -> str:
    """A text part's content, whatever its charset claims to be."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # unknown charset: UTF-8 if it fits, else Latin-1 never fails
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            return payload.decode("latin-1")


@dataclass(frozen=True)
class Attachment:
    filename: str | None
    content_type: str
    data: bytes


def message_parts(
    message: EmailMessage,
) -> tuple[str | None, str | None, tuple[Attachment, ...]]:
    """The first inline text/plain and text/html parts (decoded, ``\\n`` line endings)
    and every attachment: a part marked so, a named non-text part, an attached message."""
    text: str | None = None
    html: str | None = None
    attachments: list[Attachment] = []
    for part in message.walk():
        if part is not message and part.get_content_type() == "message/rfc822":
            attachments.append(_attachment(part))
            continue
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        is_attachment = part.get_content_disposition() == "attachment" or (
            part.get_filename() is not None and not ctype.startswith("text/")
        )
        if is_attachment:
            attachments.append(_attachment(part))
        elif ctype == "text/plain" and text is None:
            text = _newlines(decoded_text(part))
        elif ctype == "text/html" and html is None:
            html = _newlines(decoded_text(part))
    return text, html, tuple(attachments)


def _newlines(text: str) -> str:
    """SMTP carries CRLF; Python code compares with "\\n"."""
    return text.replace("\r\n", "\n")


def _attachment(part: Message) -> Attachment:
    from email.message import Message

    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        first = inner[0] if isinstance(inner, list) and inner else None
        data = first.as_bytes() if isinstance(first, Message) else b""
    else:
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
    return Attachment(part.get_filename(), part.get_content_type(), data)


def body_parts(raw: bytes) -> tuple[str | None, str | None]:
    """The first inline text/plain and text/html parts, decoded."""
    text, html, _ = message_parts(parse(raw))
    return text, html


def readable_text(raw: bytes) -> str:
    """The text a person would read: the plain part, or the HTML part rendered as text."""
    plain, html = body_parts(raw)
    if plain is not None:
        return plain
    if html is not None:
        from inscriptis import get_text

        return str(get_text(html))
    return ""


def iso_utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")
