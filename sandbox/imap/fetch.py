"""FETCH rendering (RFC 3501 §6.4.5, §7.4.2): which data an item needs, and its bytes.

The session reads from the backend only what the requested items need — flags and UIDs
come from the selected folder, sizes and dates from ``Meta``, ENVELOPE and header
sections from the header alone, BODYSTRUCTURE and part sections from the parsed MIME
tree — and renders each item with the pure functions of ``response``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sandbox.imap import response as R
from sandbox.imap.backend import Entry, Meta
from sandbox.imap.message import Part, SectionMissing, section_bytes
from sandbox.imap.parser import FetchAttr
from sandbox.imap.selected import Selected

FETCH_CHUNK = 250  # messages read from the store at once
READ_AHEAD = 128  # messages read along with a one-at-a-time body FETCH (mbsync)


def sets_seen(attrs: Sequence[FetchAttr]) -> bool:
    """§6.4.5: BODY[] and RFC822(.TEXT) set \\Seen; BODY.PEEK[] and RFC822.HEADER do not."""
    return any(
        a.name in ("RFC822", "RFC822.TEXT") or (a.name == "BODY" and a.section and not a.peek)
        for a in attrs
    )


def is_header_section(attr: FetchAttr) -> bool:
    section = attr.section
    return (
        section is not None
        and not section.parts
        and section.text in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT")
    )


def needs_structure(attr: FetchAttr) -> bool:
    """Items that need the MIME tree, not just the header/body split."""
    if attr.name == "BODYSTRUCTURE":
        return True
    if attr.name != "BODY":
        return False
    return attr.section is None or bool(attr.section.parts)


def needs_raw(attr: FetchAttr) -> bool:
    return attr.name in ("RFC822", "RFC822.TEXT") or (
        attr.name == "BODY" and not is_header_section(attr)
    )


def needs_header(attr: FetchAttr) -> bool:
    return attr.name in ("ENVELOPE", "RFC822.HEADER") or is_header_section(attr)


def body_item(attr: FetchAttr, part: Part) -> bytes:
    name = attr.name
    if name == "ENVELOPE":
        return b"ENVELOPE " + R.envelope(part)
    if name == "BODYSTRUCTURE":
        return b"BODYSTRUCTURE " + R.bodystructure(part)
    if name == "BODY" and attr.section is None:
        return b"BODY " + R.bodystructure(part, extensible=False)
    if name == "RFC822":
        return R.body_item("RFC822", part.header + part.body)
    if name == "RFC822.HEADER":
        return R.body_item("RFC822.HEADER", part.header)
    if name == "RFC822.TEXT":
        return R.body_item("RFC822.TEXT", part.body)
    section = attr.section
    assert section is not None
    label = f"BODY[{section.render()}]"
    try:
        data: bytes | None = section_bytes(part, section.parts, section.text, section.fields)
    except SectionMissing:
        data = None
    if attr.partial is not None:
        label += f"<{attr.partial[0]}>"
        if data is not None:
            data = R.partial(data, attr.partial)
    return R.body_item(label, data)


def fetch_items(
    sel: Selected,
    attrs: Sequence[FetchAttr],
    entry: Entry,
    meta: dict[int, Meta],
    parts: dict[int, Part],
) -> list[bytes] | None:
    items: list[bytes] = []
    part = parts.get(entry.message_id)
    info = meta.get(entry.message_id)
    for attr in attrs:
        name = attr.name
        if name == "UID":
            items.append(b"UID %d" % entry.uid)
        elif name == "FLAGS":
            items.append(b"FLAGS " + sel.render_flags(entry))
        elif name in ("RFC822.SIZE", "INTERNALDATE"):
            if info is None:
                return None
            items.append(
                b"RFC822.SIZE %d" % info.size
                if name == "RFC822.SIZE"
                else b"INTERNALDATE " + R.internaldate(info.internaldate)
            )
        else:
            if part is None:
                return None
            items.append(body_item(attr, part))
    return items
