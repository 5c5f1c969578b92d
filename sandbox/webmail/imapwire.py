"""What the webmail's IMAP client says and reads, as pure functions (no sockets).

aioimaplib hands back a response as a list of lines: ``bytes`` for protocol text (the
leading ``* `` removed) and ``bytearray`` for each literal's content, placed right after
the line that announced it with ``{n}``. These functions turn such lists into values and
build the arguments the client sends.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

from sandbox.imap.utf7 import Utf7Error, decode, encode

Token = str | bytes | list["Token"] | None  # atom/number, string or literal, list, NIL
_LITERAL_AT_END = re.compile(rb"\{(\d+)\+?\}$")
_EXISTS = re.compile(rb"^(\d+) EXISTS$")
_EXPUNGE = re.compile(rb"^(\d+) EXPUNGE$")
_FETCH = re.compile(rb"^(\d+) FETCH \(")


class WireError(ValueError):
    """A response this client cannot read."""


def quote(text: str) -> str:
    """A quoted string (RFC 3501 §4.3); CR and LF can never be part of one."""
    if "\r" in text or "\n" in text or "\0" in text:
        raise ValueError("line breaks are not allowed here")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def mailbox_arg(name: str) -> str:
    """A mailbox name on the wire: modified UTF-7 (RFC 3501 §5.1.3), quoted."""
    return quote(encode(name))


def search_text_arg(text: str) -> str:
    """A search string: ASCII only travels in a quoted string (§4.3, no literals here)."""
    cleaned = " ".join(text.split())
    if not cleaned.isascii():
        raise ValueError("search text must be ASCII (IMAP SEARCH without literals)")
    return quote(cleaned)


def uid_set(uids: Iterable[int]) -> str:
    values = sorted(set(uids))
    if not values or any(u <= 0 for u in values):
        raise ValueError("no messages named")
    return ",".join(str(u) for u in values)


# --- tokens ----------------------------------------------------------------------------


def _logical_lines(lines: Sequence[bytes | bytearray]) -> list[list[bytes | bytearray]]:
    """Group a line, its literals and their continuation lines into one response line."""
    groups: list[list[bytes | bytearray]] = []
    open_literal = False
    for line in lines:
        if isinstance(line, bytearray):
            if groups:
                groups[-1].append(line)
            open_literal = False
            continue
        if open_literal or (groups and _continues(groups[-1])):
            groups[-1].append(line)
        else:
            groups.append([line])
        open_literal = bool(_LITERAL_AT_END.search(line))
    return groups


def _continues(group: list[bytes | bytearray]) -> bool:
    """A group whose last piece was a literal goes on with the next text line."""
    return isinstance(group[-1], bytearray)


def tokens(group: Sequence[bytes | bytearray]) -> list[Token]:
    """One response line, literals included, as nested tokens."""
    stack: list[list[Token]] = [[]]
    for piece in group:
        if isinstance(piece, bytearray):
            stack[-1].append(bytes(piece))
            continue
        text = _LITERAL_AT_END.sub(b"", piece)
        _tokenize(text, stack)
    if len(stack) != 1:
        raise WireError("unbalanced parentheses in a response")
    return stack[0]


def _tokenize(text: bytes, stack: list[list[Token]]) -> None:
    i, n = 0, len(text)
    while i < n:
        c = text[i : i + 1]
        if c == b" ":
            i += 1
        elif c == b"(":
            new: list[Token] = []
            stack[-1].append(new)
            stack.append(new)
            i += 1
        elif c == b")":
            if len(stack) == 1:
                raise WireError("unbalanced parentheses in a response")
            stack.pop()
            i += 1
        elif c == b'"':
            j, out = i + 1, bytearray()
            while j < n and text[j : j + 1] != b'"':
                if text[j : j + 1] == b"\\" and j + 1 < n:
                    j += 1
                out += text[j : j + 1]
                j += 1
            stack[-1].append(bytes(out))
            i = j + 1
        else:
            j, depth = i, 0
            while j < n:
                ch = text[j : j + 1]
                if ch == b"[":
                    depth += 1
                elif ch == b"]":
                    depth -= 1
                elif depth == 0 and ch in (b" ", b"(", b")"):
                    break
                j += 1
            atom = text[i:j].decode("utf-8", "replace")
            stack[-1].append(None if atom.upper() == "NIL" else atom)
            i = j


def _text(token: Token) -> str:
    if isinstance(token, bytes):
        return token.decode("utf-8", "replace")
    if isinstance(token, str):
        return token
    return ""


# --- responses ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ListedFolder:
    name: str  # decoded from modified UTF-7
    attributes: tuple[str, ...]

    @property
    def selectable(self) -> bool:
        return "\\noselect" not in {a.lower() for a in self.attributes}

    @property
    def special_use(self) -> str | None:
        for attr in self.attributes:
            if attr.lower() in ("\\sent", "\\trash", "\\drafts", "\\junk", "\\archive"):
                return attr
        return None


def _without(name: bytes, line: bytes) -> bytes:
    """aioimaplib drops the response name of some commands' data, not of others."""
    return line[len(name) + 1 :] if line.startswith(name + b" ") else line


def parse_list(lines: Sequence[bytes | bytearray]) -> list[ListedFolder]:
    """``LIST (\\HasNoChildren) "/" INBOX`` lines (RFC 3501 §7.2.2)."""
    found = []
    for group in _logical_lines(lines):
        first = group[0]
        if not isinstance(first, bytes):
            continue
        first = _without(b"LIST", first)
        if not first.startswith(b"("):
            continue
        toks = tokens([first, *group[1:]])
        if len(toks) < 3 or not isinstance(toks[0], list):
            raise WireError(f"cannot read a LIST response: {first!r}")
        name = _text(toks[2])
        with contextlib.suppress(Utf7Error):  # else shown as the server spelt it
            name = decode(name)
        found.append(ListedFolder(name, tuple(_text(t) for t in toks[0])))
    return found


def parse_status(lines: Sequence[bytes | bytearray]) -> dict[str, int]:
    """``STATUS "INBOX" (MESSAGES 3 UNSEEN 1)`` (§7.2.4)."""
    for group in _logical_lines(lines):
        first = group[0]
        if not isinstance(first, bytes) or not first.rstrip().endswith(b")"):
            continue
        toks = tokens([_without(b"STATUS", first), *group[1:]])
        items = toks[-1] if toks and isinstance(toks[-1], list) else []
        pairs = zip(items[::2], items[1::2], strict=False)
        return {_text(k).upper(): int(_text(v)) for k, v in pairs}
    raise WireError("the STATUS response is missing")


def parse_search(lines: Sequence[bytes | bytearray]) -> list[int]:
    """``SEARCH 1 4 9`` (§7.2.5)."""
    found: list[int] = []
    for line in lines:
        if not isinstance(line, bytes):
            continue
        words = _without(b"SEARCH", line).split()
        if line == b"SEARCH" or (words and all(w.isdigit() for w in words)):
            found += [int(n) for n in words if n.isdigit()]
    return found


@dataclass
class Fetched:
    """One message's FETCH data (§7.4.2)."""

    seq: int
    uid: int = 0
    flags: tuple[str, ...] = ()
    size: int = 0
    internaldate: str | None = None
    sections: dict[str, bytes] = field(default_factory=dict)  # "BODY[]" → the literal


def parse_fetch(lines: Sequence[bytes | bytearray]) -> list[Fetched]:
    found = []
    for group in _logical_lines(lines):
        first = group[0]
        if not isinstance(first, bytes):
            continue
        match = _FETCH.match(first)
        if match is None:
            continue
        toks = tokens([first[match.end() - 1 :], *group[1:]])
        if not toks or not isinstance(toks[0], list):
            raise WireError(f"cannot read a FETCH response: {first[:80]!r}")
        item = Fetched(int(match.group(1)))
        attrs = toks[0]
        for name, value in zip(attrs[::2], attrs[1::2], strict=False):
            key = _text(name).upper()
            if key == "UID":
                item.uid = int(_text(value))
            elif key == "FLAGS" and isinstance(value, list):
                item.flags = tuple(_text(f) for f in value)
            elif key == "RFC822.SIZE":
                item.size = int(_text(value))
            elif key == "INTERNALDATE":
                item.internaldate = _text(value)
            elif key.startswith("BODY["):
                item.sections[key.replace(".PEEK", "")] = value if isinstance(value, bytes) else b""
        found.append(item)
    return found


@dataclass(frozen=True)
class Changes:
    """What unsolicited responses said about the selected folder (§7.3.1, §7.4.1)."""

    exists: int | None = None
    expunged: tuple[int, ...] = ()
    flags: tuple[int, ...] = ()  # uids whose flags changed, where the server said

    @property
    def any(self) -> bool:
        return self.exists is not None or bool(self.expunged) or bool(self.flags)


def changes(lines: Sequence[bytes | bytearray], *, flags_too: bool) -> Changes:
    """EXISTS and EXPUNGE in any response; FETCH FLAGS only when nothing of ours asked
    for FETCH data (during IDLE), since our own FETCH replies look the same."""
    exists: int | None = None
    expunged: list[int] = []
    flagged: list[int] = []
    for line in lines:
        if not isinstance(line, bytes):
            continue
        if match := _EXISTS.match(line):
            exists = int(match.group(1))
        elif match := _EXPUNGE.match(line):
            expunged.append(int(match.group(1)))
        elif flags_too and _FETCH.match(line):
            for item in parse_fetch([line]):
                flagged.append(item.uid or item.seq)
    return Changes(exists, tuple(expunged), tuple(flagged))


def internaldate_iso(value: str | None) -> str | None:
    """``"01-Dec-2026 19:57:51 +0000"`` as ISO 8601."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(_as_rfc2822(value)).isoformat()
    except (TypeError, ValueError):
        return None


def _as_rfc2822(value: str) -> str:
    day_month_year, _, rest = value.strip().partition(" ")
    day, month, year = day_month_year.split("-")
    return f"{day.strip()} {month} {year} {rest}"
