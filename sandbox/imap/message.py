"""A byte-exact MIME tree of a stored message, for FETCH sections and BODYSTRUCTURE.

Hand-rolled rather than ``email``: IMAP sections are byte ranges of the message as
stored (RFC 3501 §6.4.5), and ``email`` re-serialises what it parses. Parsing is lenient
— a broken message still has a header and a body, it just has fewer parts.
"""

from __future__ import annotations

import email.header
import re
from dataclasses import dataclass, field
from functools import cached_property

_FIELD_NAME = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]*:")
_PARAM = re.compile(
    r';\s*([^\s=;"]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s;]*)',
)


def split_header(raw: bytes) -> tuple[bytes, bytes]:
    """The header block including its blank line, and the body (RFC 5322 §2.1)."""
    if raw.startswith(b"\r\n"):
        return raw[:2], raw[2:]
    if raw.startswith(b"\n"):
        return raw[:1], raw[1:]
    end = raw.find(b"\r\n\r\n")
    # A bare-LF blank line only matters before the CRLF one: no need to scan the body.
    lf_end = raw.find(b"\n\n", 0, end + 2) if end >= 0 else raw.find(b"\n\n")
    if end < 0 and lf_end < 0:
        return raw, b""
    if end < 0 or (0 <= lf_end < end):
        return raw[: lf_end + 2], raw[lf_end + 2 :]
    return raw[: end + 4], raw[end + 4 :]


def header_fields(header: bytes) -> list[tuple[bytes, bytes]]:
    """Each field as (raw bytes of the whole field incl. CRLF, lower-cased name)."""
    fields: list[tuple[bytes, bytes]] = []
    for line in header.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            raw, name = fields[-1]
            fields[-1] = (raw + line, name)
            continue
        match = _FIELD_NAME.match(line)
        if match:
            fields.append((line, match.group(1).lower()))
    return fields


def select_fields(header: bytes, names: tuple[str, ...], *, exclude: bool) -> bytes:
    """§6.4.5 HEADER.FIELDS (.NOT): the chosen fields, then the blank line."""
    wanted = {n.lower().encode("ascii", "replace") for n in names}
    chosen = [raw for raw, name in header_fields(header) if (name in wanted) != exclude]
    return b"".join(chosen) + b"\r\n"


def field_value(raw_field: bytes) -> bytes:
    """The unfolded value of one field (RFC 5322 §2.2.3)."""
    value = raw_field.split(b":", 1)[1] if b":" in raw_field else b""
    return re.sub(rb"\r?\n(?=[ \t])", b"", value).strip()


def decode_words(value: str) -> str:
    """RFC 2047 encoded words to text, for SEARCH matching."""
    if "=?" not in value:
        return value
    try:
        pieces = email.header.decode_header(value)
    except (ValueError, LookupError, UnicodeError):
        return value
    out = []
    for data, charset in pieces:
        if isinstance(data, bytes):
            try:
                out.append(data.decode(charset or "ascii", "replace"))
            except LookupError:
                out.append(data.decode("latin-1"))
        else:
            out.append(data)
    return "".join(out)


def _text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def parse_params(value: str) -> tuple[str, dict[str, str]]:
    """``type/subtype; a=b`` → ("type/subtype", {"a": "b"}), keys lower-cased."""
    head, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for key, raw in _PARAM.findall(";" + rest):
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params.setdefault(key.lower(), raw)
    return head.strip(), params


@dataclass
class Part:
    """One MIME entity: its header block, body, and children or encapsulated message."""

    header: bytes
    body: bytes
    default_type: str = "text/plain"
    parts: list[Part] = field(default_factory=list)
    message: Part | None = None  # the message inside a message/rfc822 part

    @cached_property
    def fields(self) -> list[tuple[bytes, bytes]]:
        return header_fields(self.header)

    def get(self, name: str) -> str | None:
        """The first field of that name, unfolded, as text (raw bytes kept via UTF-8)."""
        key = name.lower().encode()
        for raw, fname in self.fields:
            if fname == key:
                return _text(field_value(raw))
        return None

    def get_all(self, name: str) -> list[str]:
        key = name.lower().encode()
        return [_text(field_value(raw)) for raw, fname in self.fields if fname == key]

    @cached_property
    def content_type(self) -> tuple[str, str, dict[str, str]]:
        value = self.get("content-type")
        if value:
            full, params = parse_params(value)
            maintype, slash, subtype = full.partition("/")
            if slash and maintype and subtype:
                return maintype.lower(), subtype.lower(), params
        maintype, _, subtype = self.default_type.partition("/")
        params = {"charset": "us-ascii"} if maintype == "text" else {}
        return maintype, subtype, params

    @property
    def is_multipart(self) -> bool:
        return self.content_type[0] == "multipart" and bool(self.parts)

    @property
    def is_message(self) -> bool:
        return self.message is not None


def parse_message(raw: bytes, default_type: str = "text/plain", depth: int = 0) -> Part:
    header, body = split_header(raw)
    part = Part(header, body, default_type)
    maintype, subtype, params = part.content_type
    if depth > 20:
        return part
    if maintype == "multipart" and params.get("boundary"):
        child_default = "message/rfc822" if subtype == "digest" else "text/plain"
        part.parts = [
            parse_message(chunk, child_default, depth + 1)
            for chunk in _split_multipart(body, params["boundary"].encode("utf-8", "replace"))
        ]
    elif (maintype, subtype) in (("message", "rfc822"), ("message", "global")):
        part.message = parse_message(body, "text/plain", depth + 1)
    return part


def _split_multipart(body: bytes, boundary: bytes) -> list[bytes]:
    """RFC 2046 §5.1.1: the CRLF before a delimiter belongs to the delimiter."""
    delimiter = re.compile(rb"(?:^|\r?\n)--" + re.escape(boundary) + rb"(--)?[ \t]*(?:\r?\n|$)")
    chunks: list[bytes] = []
    start: int | None = None
    for match in delimiter.finditer(body):
        if start is not None:
            chunks.append(body[start : match.start()])
        if match.group(1):
            return chunks
        start = match.end()
    if start is not None:
        chunks.append(body[start:])
    return chunks


class SectionMissing(LookupError):
    """A part number that the message does not have; FETCH returns NIL for it."""


def find_part(root: Part, parts: tuple[int, ...]) -> Part:
    """Walk §6.4.5 part numbers; a message/rfc822 part is entered transparently."""
    current = root
    for number in parts:
        if current.message is not None and current is not root:
            current = current.message
        if current.is_multipart:
            if number > len(current.parts):
                raise SectionMissing(parts)
            current = current.parts[number - 1]
        elif number == 1:
            # The body of a non-multipart message is its part 1.
            continue
        else:
            raise SectionMissing(parts)
    return current


def section_bytes(
    root: Part, parts: tuple[int, ...], text: str | None, names: tuple[str, ...]
) -> bytes:
    """The octets of BODY[section] (§6.4.5)."""
    part = find_part(root, parts) if parts else root
    if text is None:
        if not parts:
            return root.header + root.body
        # BODY[n] of a message/rfc822 part is the whole encapsulated message.
        return part.body
    if text == "MIME":
        return part.header
    target = part
    if parts:
        # HEADER/TEXT of a part address the message/rfc822 inside it.
        if part.message is None:
            raise SectionMissing(parts)
        target = part.message
    if text == "HEADER":
        return target.header
    if text == "TEXT":
        return target.body
    return select_fields(target.header, names, exclude=text == "HEADER.FIELDS.NOT")
