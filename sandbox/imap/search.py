"""SEARCH evaluation (RFC 3501 §6.4.4): search keys tested against one message at a time.

Each message is read only as far as the keys need (``_search_needs``): flags, UIDs and
sequence numbers come from the selected folder, sizes and internal dates from ``Meta``,
address and date keys from the header, BODY and TEXT from the decoded MIME parts.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import quopri
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sandbox.imap.backend import Entry, ImapBackend, Meta
from sandbox.imap.fetch import FETCH_CHUNK
from sandbox.imap.message import Part, decode_words, field_value, header_fields
from sandbox.imap.parser import SearchKey, SeqRange, SequenceSet
from sandbox.imap.selected import Selected, has_flag


async def search(backend: ImapBackend, sel: Selected, key: SearchKey, *, uid: bool) -> list[int]:
    """The sequence numbers (or UIDs) of the messages that match ``key``, in order."""
    needs = _search_needs(key)
    found: list[int] = []
    total = len(sel.entries)
    max_uid = sel.uids[-1] if sel.uids else 0
    for start in range(0, total, FETCH_CHUNK):
        chunk = sel.entries[start : start + FETCH_CHUNK]
        mids = [e.message_id for e in chunk]
        meta = await backend.meta(mids) if "meta" in needs else {}
        parts: dict[int, Part] = {}
        if "full" in needs:
            parts = await backend.messages(mids)
        elif "header" in needs:
            headers = await backend.headers(mids)
            parts = {m: Part(h, b"") for m, h in headers.items()}
        for offset, entry in enumerate(chunk):
            ctx = _SearchContext(
                seq=start + offset + 1,
                total=total,
                max_uid=max_uid,
                entry=entry,
                recent=entry.uid in sel.recent,
                meta=meta.get(entry.message_id),
                part=parts.get(entry.message_id),
            )
            if _matches(key, ctx):
                found.append(entry.uid if uid else start + offset + 1)
    return found


@dataclass
class _SearchContext:
    seq: int
    total: int
    max_uid: int
    entry: Entry
    recent: bool
    meta: Meta | None
    part: Part | None
    _body_text: str | None = None

    def headers(self, name: str) -> list[str]:
        if self.part is None:
            return []
        key = name.lower().encode("ascii", "replace")
        return [
            decode_words(field_value(raw).decode("utf-8", "replace"))
            for raw, fname in header_fields(self.part.header)
            if fname == key
        ]

    def body_text(self) -> str:
        if self._body_text is None:
            self._body_text = _searchable_text(self.part).casefold() if self.part else ""
        return self._body_text


_NO_ARG_TESTS: dict[str, Callable[[_SearchContext], bool]] = {
    "ALL": lambda c: True,
    "ANSWERED": lambda c: has_flag(c.entry.flags, "\\Answered"),
    "DELETED": lambda c: has_flag(c.entry.flags, "\\Deleted"),
    "DRAFT": lambda c: has_flag(c.entry.flags, "\\Draft"),
    "FLAGGED": lambda c: has_flag(c.entry.flags, "\\Flagged"),
    "SEEN": lambda c: has_flag(c.entry.flags, "\\Seen"),
    "UNANSWERED": lambda c: not has_flag(c.entry.flags, "\\Answered"),
    "UNDELETED": lambda c: not has_flag(c.entry.flags, "\\Deleted"),
    "UNDRAFT": lambda c: not has_flag(c.entry.flags, "\\Draft"),
    "UNFLAGGED": lambda c: not has_flag(c.entry.flags, "\\Flagged"),
    "UNSEEN": lambda c: not has_flag(c.entry.flags, "\\Seen"),
    "RECENT": lambda c: c.recent,
    "OLD": lambda c: not c.recent,
    "NEW": lambda c: c.recent and not has_flag(c.entry.flags, "\\Seen"),
}


def _search_needs(key: SearchKey) -> set[str]:
    needs: set[str] = set()
    if key.op in ("LARGER", "SMALLER", "BEFORE", "ON", "SINCE"):
        needs.add("meta")
    elif key.op in ("BCC", "CC", "FROM", "SUBJECT", "TO", "HEADER") or key.op.startswith("SENT"):
        needs.add("header")
    elif key.op in ("BODY", "TEXT"):
        needs.add("full")
    for arg in key.args:
        if isinstance(arg, SearchKey):
            needs |= _search_needs(arg)
    return needs


def _bounds(r: SeqRange, top: int) -> tuple[int, int]:
    """A range with ``*`` read as ``top``, lowest first (§9: 4:2 means 2:4)."""
    first = top if r.first is None else r.first
    last = top if r.last is None else r.last
    return (first, last) if first <= last else (last, first)


def _in_set(seqset: SequenceSet, value: int, top: int) -> bool:
    for r in seqset:
        lo, hi = _bounds(r, top)
        if lo <= value <= hi:
            return True
    return False


def _sent_date(ctx: _SearchContext) -> date | None:
    values = ctx.headers("date")
    if not values:
        return None
    try:
        return email.utils.parsedate_to_datetime(values[0]).date()
    except (TypeError, ValueError, IndexError):
        return None


def _matches(key: SearchKey, ctx: _SearchContext) -> bool:
    op, args = key.op, key.args
    test = _NO_ARG_TESTS.get(op)
    if test is not None:
        return test(ctx)
    if op == "AND":
        return all(_matches(k, ctx) for k in args if isinstance(k, SearchKey))
    if op == "NOT":
        assert isinstance(args[0], SearchKey)
        return not _matches(args[0], ctx)
    if op == "OR":
        assert isinstance(args[0], SearchKey) and isinstance(args[1], SearchKey)
        return _matches(args[0], ctx) or _matches(args[1], ctx)
    if op == "SEQSET":
        return _in_set(args[0], ctx.seq, ctx.total)  # type: ignore[arg-type]
    if op == "UID":
        return _in_set(args[0], ctx.entry.uid, ctx.max_uid)  # type: ignore[arg-type]
    if op in ("KEYWORD", "UNKEYWORD"):
        return bool(has_flag(ctx.entry.flags, str(args[0])) == (op == "KEYWORD"))
    if op in ("LARGER", "SMALLER"):
        if ctx.meta is None:
            return False
        limit = args[0]
        assert isinstance(limit, int)
        return ctx.meta.size > limit if op == "LARGER" else ctx.meta.size < limit
    if op in ("BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"):
        wanted = args[0]
        assert isinstance(wanted, date)
        if op.startswith("SENT"):
            actual = _sent_date(ctx)
        else:
            # §6.4.4: internal date, disregarding time and timezone.
            actual = datetime.fromtimestamp(ctx.meta.internaldate, UTC).date() if ctx.meta else None
        if actual is None:
            return False
        kind = op.removeprefix("SENT")
        return (
            actual < wanted
            if kind == "BEFORE"
            else actual == wanted
            if kind == "ON"
            else actual >= wanted
        )
    if op in ("BCC", "CC", "FROM", "SUBJECT", "TO"):
        needle = str(args[0]).casefold()
        return any(needle in v.casefold() for v in ctx.headers(op.lower()))
    if op == "HEADER":
        needle = str(args[1]).casefold()
        return any(needle in v.casefold() for v in ctx.headers(str(args[0])))
    if op == "BODY":
        return str(args[0]).casefold() in ctx.body_text()
    if op == "TEXT":
        needle = str(args[0]).casefold()
        if ctx.part is not None and needle in _decoded_header(ctx.part).casefold():
            return True
        return needle in ctx.body_text()
    return False


def _decoded_header(part: Part) -> str:
    return decode_words(part.header.decode("utf-8", "replace"))


def _searchable_text(part: Part) -> str:
    """Text parts with their transfer encoding undone, for BODY and TEXT (§6.4.4)."""
    if part.is_multipart:
        return "\n".join(_searchable_text(p) for p in part.parts)
    if part.message is not None:
        return _decoded_header(part.message) + "\n" + _searchable_text(part.message)
    if part.content_type[0] not in ("text", "message"):
        return ""
    encoding = (part.get("content-transfer-encoding") or "").strip().lower()
    data = part.body
    try:
        if encoding == "base64":
            data = base64.b64decode(data)
        elif encoding == "quoted-printable":
            data = quopri.decodestring(data)
    except (binascii.Error, ValueError):
        pass
    charset = part.content_type[2].get("charset", "utf-8")
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")
