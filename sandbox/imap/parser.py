"""The IMAP command codec, sans-IO: bytes in, command dataclasses out (RFC 3501 §9).

Theory of operation: ``receive_data`` appends to a buffer. ``next_command`` frames one
whole command — a line, and when the line ends in a literal announcement ``{n}`` the
literal's n octets and the line after them, and so on — then parses it in one go. The
framer is where the limits live: a line longer than ``max_line``, a literal larger than
``max_literal``, or a whole command (lines and literals together) larger than
``max_command`` is refused with a tagged reply before any of it is buffered, and the
connection stays usable. The server lowers ``max_command`` until the client logs in. A
synchronising literal needs the server's go-ahead (``+``), so the framer hands back
``SendContinuation`` once per literal; a LITERAL+ ``{n+}`` does not (RFC 7888).

Two commands read raw lines after their command line — AUTHENTICATE (the SASL response)
and IDLE (``DONE``) — so the session can ask for the next line as a ``RawLine``.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Final, Literal

from sandbox.imap import utf7

DEFAULT_MAX_LINE = 64 * 1024
DEFAULT_MAX_LITERAL = 64 * 1024 * 1024
DEFAULT_MAX_COMMAND = 64 * 1024 * 1024
# The tag of an error reply is what the client sent only when it is this short and
# followed by a space; otherwise "*" (an over-long line is not echoed back).
MAX_ECHOED_TAG = 64
# Levels of nested search keys (parentheses, NOT, OR): the one recursive part of the
# grammar; deeper gets a tagged BAD, which also keeps the recursion off Python's limit.
DEFAULT_MAX_NESTING = 32

# --- what next_command returns --------------------------------------------------------


class NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()


@dataclass(frozen=True)
class SendContinuation:
    """The client waits for ``+`` before sending a synchronising literal (§7.5)."""

    text: str = "Ready for literal data"


@dataclass(frozen=True)
class ParseError:
    """The peer sent something we cannot accept; rendered as a tagged reply."""

    tag: str  # "*" when not even a tag could be read
    text: str
    status: Literal["BAD", "NO"] = "BAD"
    code: str | None = None

    def render(self) -> bytes:
        code = f"[{self.code}] " if self.code else ""
        return f"{self.tag} {self.status} {code}{self.text}\r\n".encode()


@dataclass(frozen=True)
class RawLine:
    """One line read outside the command grammar (AUTHENTICATE response, IDLE's DONE)."""

    data: bytes


# --- commands ------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    tag: str
    name: str  # upper case; UID variants keep their own name ("FETCH") and set uid
    uid: bool = field(default=False, kw_only=True)


@dataclass(frozen=True)
class Authenticate(Command):
    mechanism: str
    initial: bytes | None = None  # SASL-IR (RFC 4959); b"" for "="


@dataclass(frozen=True)
class Login(Command):
    user: str
    password: str


@dataclass(frozen=True)
class MailboxCommand(Command):
    """SELECT, EXAMINE, CREATE, DELETE, SUBSCRIBE, UNSUBSCRIBE."""

    mailbox: str


@dataclass(frozen=True)
class Rename(Command):
    old: str
    new: str


@dataclass(frozen=True)
class ListCommand(Command):
    """LIST and LSUB; ``pattern`` keeps its wildcards, decoded from modified UTF-7."""

    reference: str
    pattern: str


@dataclass(frozen=True)
class Status(Command):
    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True)
class Append(Command):
    mailbox: str
    flags: tuple[str, ...]
    date: datetime | None
    message: bytes


@dataclass(frozen=True)
class SeqRange:
    """``first:last`` where None stands for ``*`` (§9 seq-range)."""

    first: int | None
    last: int | None


SequenceSet = tuple[SeqRange, ...]


@dataclass(frozen=True)
class SearchKey:
    """One search key: ``op`` is the RFC 3501 §6.4.4 name (upper case) or AND/SEQSET.

    ``args`` holds strings, numbers, dates, sequence sets or nested keys, by op.
    """

    op: str
    args: tuple[object, ...] = ()


@dataclass(frozen=True)
class Search(Command):
    charset: str | None
    key: SearchKey  # an AND of the top-level keys


@dataclass(frozen=True)
class Section:
    """``BODY[parts.text]``: parts like (1, 2); text HEADER, HEADER.FIELDS(.NOT), TEXT, MIME."""

    parts: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    def render(self) -> str:
        spec = ".".join(str(p) for p in self.parts)
        if self.text:
            spec = f"{spec}.{self.text}" if spec else self.text
        if self.text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
            spec += " (" + " ".join(self.fields) + ")"
        return spec


@dataclass(frozen=True)
class FetchAttr:
    """One FETCH item; ``section``/``partial`` only for BODY[...] (§6.4.5)."""

    name: str  # ENVELOPE, FLAGS, ..., BODY (with section or not), BINARY not supported
    section: Section | None = None
    partial: tuple[int, int] | None = None  # (origin, octet count)
    peek: bool = False


@dataclass(frozen=True)
class Fetch(Command):
    seqset: SequenceSet
    attrs: tuple[FetchAttr, ...]


@dataclass(frozen=True)
class Store(Command):
    seqset: SequenceSet
    mode: Literal["", "+", "-"]
    silent: bool
    flags: tuple[str, ...]


@dataclass(frozen=True)
class CopyCommand(Command):
    """COPY and MOVE (RFC 6851)."""

    seqset: SequenceSet
    mailbox: str


@dataclass(frozen=True)
class UidExpunge(Command):
    seqset: SequenceSet


@dataclass(frozen=True)
class Enable(Command):
    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class Id(Command):
    params: tuple[tuple[str, str | None], ...] | None


# --- the framer ----------------------------------------------------------------------

_LITERAL_AT_END = re.compile(rb"~?\{(\d{1,20})(\+?)\}$")
_ANNOUNCEMENT_TAIL = 25  # "~{" + 20 digits + "+}" and a CR
_TAG_AT_START = re.compile(
    rb"^([\x21\x23\x24\x26\x27\x2c-\x5b\x5e-\x7a\x7c\x7e]{1,%d}) " % MAX_ECHOED_TAG
)


class Parser:
    """Frames and parses client commands; see the module docstring."""

    def __init__(
        self,
        *,
        max_line: int = DEFAULT_MAX_LINE,
        max_literal: int = DEFAULT_MAX_LITERAL,
        max_nesting: int = DEFAULT_MAX_NESTING,
        max_command: int = DEFAULT_MAX_COMMAND,
    ) -> None:
        self.max_line = max_line
        self.max_literal = max_literal
        self.max_nesting = max_nesting
        self.max_command = max_command
        self._buf = bytearray()
        self._line_start = 0  # where the line being framed starts
        self._continued = False  # "+" already sent for the literal being awaited
        self._discard = 0  # octets of a refused LITERAL+ still to throw away
        self._skip_line = False  # throw away input up to the next CRLF
        self._raw_line = False

    def receive_data(self, data: bytes) -> None:
        self._buf += data

    def expect_raw_line(self) -> None:
        """The next line is a continuation response, not a command."""
        self._raw_line = True

    def clear(self) -> None:
        """Forget buffered input (after STARTTLS: RFC 3501 §6.2.1, no plaintext injection)."""
        self._buf.clear()
        self._line_start = 0
        self._continued = False
        self._discard = 0
        self._skip_line = False

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def next_command(self) -> Command | SendContinuation | ParseError | RawLine | NeedData:
        buf = self._buf
        while True:
            if self._discard:
                dropped = min(self._discard, len(buf))
                del buf[:dropped]
                self._discard -= dropped
                if self._discard:
                    return NEED_DATA
            if self._skip_line:
                end = buf.find(b"\r\n")
                if end < 0:
                    # Keep what could be the start of a literal announcement at the end.
                    del buf[: max(0, len(buf) - _ANNOUNCEMENT_TAIL)]
                    return NEED_DATA
                more = _LITERAL_AT_END.search(buf, 0, end)
                follows = int(more.group(1)) if more is not None and more.group(2) else 0
                del buf[: end + 2]
                self._skip_line = False
                if follows:
                    # The refused command goes on with another LITERAL+: it arrives anyway.
                    self._discard = follows
                    self._skip_line = True
                    continue
            start = self._line_start
            end = buf.find(b"\r\n", start)
            if end < 0:
                if len(buf) - start > self.max_line:
                    return self._refuse_line(start, self._line_text())
                if not self._raw_line and len(buf) > self.max_command:
                    return self._refuse_line(start, self._command_text())
                return NEED_DATA
            if end - start > self.max_line:
                return self._refuse_line(start, self._line_text())
            if self._raw_line:
                self._raw_line = False
                line = bytes(buf[:end])
                del buf[: end + 2]
                return RawLine(line)
            if end + 2 > self.max_command:
                return self._refuse_line(start, self._command_text())
            match = _LITERAL_AT_END.search(buf, start, end)
            if match is None:
                data = bytes(buf[: end + 2])
                del buf[: end + 2]
                self._line_start = 0
                self._continued = False
                return parse_command(data, max_nesting=self.max_nesting)
            size = int(match.group(1))
            nonsync = bool(match.group(2))
            if size > self.max_literal:
                text = f"Literal of {size} octets exceeds the limit of {self.max_literal}"
                return self._refuse_literal(size, nonsync, end, text)
            if end + 2 + size > self.max_command:
                return self._refuse_literal(size, nonsync, end, self._command_text())
            if not nonsync and not self._continued:
                self._continued = True
                if len(buf) <= end + 2:
                    return SendContinuation()
            if len(buf) < end + 2 + size:
                return NEED_DATA
            self._line_start = end + 2 + size
            self._continued = False

    def _tag(self) -> str:
        match = _TAG_AT_START.match(self._buf)
        return match.group(1).decode("ascii") if match else "*"

    def _line_text(self) -> str:
        return f"Line longer than {self.max_line} octets"

    def _command_text(self) -> str:
        return (
            f"Command longer than {self.max_command} octets (its lines and literals together);"
            " send less in one command"
        )

    def _refuse_line(self, start: int, text: str) -> ParseError:
        tag = self._tag()
        end = self._buf.find(b"\r\n", start)
        if end >= 0:
            more = _LITERAL_AT_END.search(self._buf, start, end)
            follows = int(more.group(1)) if more is not None and more.group(2) else 0
            del self._buf[: end + 2]
            if follows:  # a LITERAL+ announced at the end arrives anyway: drop it too
                self._discard, self._skip_line = follows, True
        else:
            # Keep what could be the start of a literal announcement at the end.
            del self._buf[: max(0, len(self._buf) - _ANNOUNCEMENT_TAIL)]
            self._skip_line = True
        self._line_start = 0
        self._continued = False
        return ParseError(tag, text)

    def _refuse_literal(self, size: int, nonsync: bool, end: int, text: str) -> ParseError:
        """RFC 7888 §4: refuse before reading; a LITERAL+ arrives anyway and is dropped."""
        tag = self._tag()
        del self._buf[: end + 2]
        self._line_start = 0
        self._continued = False
        if nonsync:
            self._discard = size
            self._skip_line = True  # the rest of the command line follows the literal
        return ParseError(tag, text, "NO", "TOOBIG")


# --- the grammar ---------------------------------------------------------------------


class SyntaxProblem(ValueError):
    """A command that does not follow RFC 3501 §9; its text goes into the BAD reply."""


_ATOM_SPECIALS = frozenset(b'(){ %*"\\]') | frozenset(range(0x20)) | {0x7F}
_ATOM_CHARS = frozenset(range(0x21, 0x7F)) - _ATOM_SPECIALS
_ASTRING_CHARS = _ATOM_CHARS | {ord("]")}
_LIST_CHARS = _ATOM_CHARS | frozenset(b"%*]")
_TAG_CHARS = _ASTRING_CHARS - {ord("+")}
_BASE64_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_SYSTEM_FLAGS = {
    f.upper(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")
}
_STATUS_ITEMS = frozenset({"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN"})
_FETCH_SIMPLE = frozenset(
    {
        "ENVELOPE",
        "FLAGS",
        "INTERNALDATE",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.SIZE",
        "RFC822.TEXT",
        "BODY",
        "BODYSTRUCTURE",
        "UID",
    }
)
FETCH_MACROS: dict[str, tuple[str, ...]] = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
# RFC 3501 §6.4.4 search keys by the arguments they take.
SEARCH_NO_ARG = frozenset(
    {"ALL", "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "NEW", "OLD", "RECENT", "SEEN"}
    | {"UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN"}
)
SEARCH_STRING_ARG = frozenset(["BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"])
SEARCH_DATE_ARG = frozenset(["BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"])
SEARCH_NUMBER_ARG = frozenset({"LARGER", "SMALLER"})
SEARCH_FLAG_ARG = frozenset({"KEYWORD", "UNKEYWORD"})
_SEARCH_WITH_ARGS = (
    SEARCH_STRING_ARG
    | SEARCH_DATE_ARG
    | SEARCH_NUMBER_ARG
    | SEARCH_FLAG_ARG
    | {"HEADER", "UID", "NOT", "OR"}
)


def canonical_flag(flag: str) -> str:
    """System flags are case-insensitive (§2.3.2); give them one spelling."""
    return _SYSTEM_FLAGS.get(flag.upper(), flag)


class _Reader:
    """Recursive descent over one framed command (line, literals and all)."""

    def __init__(self, data: bytes, max_nesting: int = DEFAULT_MAX_NESTING) -> None:
        self.data = data
        self.pos = 0
        self.max_nesting = max_nesting

    # primitives

    def peek(self) -> int:
        return self.data[self.pos] if self.pos < len(self.data) else -1

    def at_end(self) -> bool:
        return self.data.startswith(b"\r\n", self.pos)

    def expect(self, token: bytes, what: str | None = None) -> None:
        if not self.data.startswith(token, self.pos):
            raise SyntaxProblem(f"Expected {what or token.decode()!s}")
        self.pos += len(token)

    def sp(self) -> None:
        self.expect(b" ", "a space")

    def maybe(self, token: bytes) -> bool:
        if self.data.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def end(self) -> None:
        if not self.at_end():
            raise SyntaxProblem("Unexpected characters at the end of the command")
        self.pos += 2

    def _run(self, chars: frozenset[int]) -> bytes:
        start = self.pos
        data = self.data
        while self.pos < len(data) and data[self.pos] in chars:
            self.pos += 1
        return data[start : self.pos]

    def atom(self, what: str = "an atom") -> str:
        run = self._run(_ATOM_CHARS)
        if not run:
            raise SyntaxProblem(f"Expected {what}")
        return run.decode("ascii")

    def tag(self) -> str:
        run = self._run(_TAG_CHARS)
        if not run:
            raise SyntaxProblem("Missing or invalid tag")
        return run.decode("ascii")

    def number(self, what: str = "a number") -> int:
        start = self.pos
        while self.peek() in range(0x30, 0x3A):
            self.pos += 1
        if start == self.pos or self.pos - start > 10:
            raise SyntaxProblem(f"Expected {what}")
        value = int(self.data[start : self.pos])
        if value > 0xFFFFFFFF:
            raise SyntaxProblem(f"{what} out of range")
        return value

    def nz_number(self, what: str = "a non-zero number") -> int:
        value = self.number(what)
        if value == 0:
            raise SyntaxProblem(f"Expected {what}")
        return value

    def quoted(self) -> bytes:
        self.expect(b'"')
        out = bytearray()
        data = self.data
        while True:
            if self.pos >= len(data):
                raise SyntaxProblem("Unterminated quoted string")
            char = data[self.pos]
            if char == 0x22:
                self.pos += 1
                return bytes(out)
            if char in (0x0D, 0x0A, 0x00):
                raise SyntaxProblem("Unterminated quoted string")
            if char == 0x5C:
                self.pos += 1
                if self.peek() not in (0x22, 0x5C):
                    raise SyntaxProblem('Only \\\\ and \\" may be escaped in a quoted string')
                char = data[self.pos]
            out.append(char)
            self.pos += 1

    def literal(self) -> bytes:
        match = re.compile(rb"~?\{(\d{1,20})\+?\}\r\n").match(self.data, self.pos)
        if match is None:
            raise SyntaxProblem("Bad literal")
        size = int(match.group(1))
        start = match.end()
        if start + size > len(self.data):
            raise SyntaxProblem("Literal shorter than announced")
        self.pos = start + size
        return self.data[start : self.pos]

    def at_literal(self) -> bool:
        """A literal ``{n}``, or a literal8 ``~{n}`` (RFC 3516 §4.3); a ``~`` on its own is
        an ordinary atom character (``LIST "" ~foo``)."""
        char = self.peek()
        return char == 0x7B or (char == 0x7E and self.data.startswith(b"{", self.pos + 1))

    def string(self) -> bytes:
        if self.peek() == 0x22:
            return self.quoted()
        if self.at_literal():
            return self.literal()
        raise SyntaxProblem("Expected a string")

    def astring_bytes(self) -> bytes:
        if self.peek() == 0x22 or self.at_literal():
            return self.string()
        run = self._run(_ASTRING_CHARS)
        if not run:
            raise SyntaxProblem("Expected an atom or a string")
        return run

    def astring(self) -> str:
        return _text(self.astring_bytes())

    def nstring(self) -> str | None:
        if self.data[self.pos : self.pos + 3].upper() == b"NIL":
            self.pos += 3
            return None
        return _text(self.string())

    def mailbox(self) -> str:
        raw = self.astring()
        return decode_mailbox(raw)

    def list_mailbox(self) -> str:
        if self.peek() == 0x22 or self.at_literal():
            raw = _text(self.string())
        else:
            run = self._run(_LIST_CHARS)
            if not run:
                raise SyntaxProblem("Expected a mailbox pattern")
            raw = run.decode("ascii")
        return decode_mailbox(raw, pattern=True)

    def flag(self) -> str:
        if self.maybe(b"\\"):
            if self.maybe(b"*"):
                return "\\*"
            return canonical_flag("\\" + self.atom("a flag"))
        return self.atom("a flag")

    def flag_list(self) -> tuple[str, ...]:
        self.expect(b"(", "a flag list")
        flags: list[str] = []
        if not self.maybe(b")"):
            flags.append(self.flag())
            while self.maybe(b" "):
                flags.append(self.flag())
            self.expect(b")")
        return tuple(flags)

    def seqset(self) -> SequenceSet:
        ranges = [self._seqrange()]
        while self.maybe(b","):
            ranges.append(self._seqrange())
        return tuple(ranges)

    def _seqnumber(self) -> int | None:
        if self.maybe(b"*"):
            return None
        return self.nz_number("a sequence set")

    def _seqrange(self) -> SeqRange:
        first = self._seqnumber()
        if self.maybe(b":"):
            return SeqRange(first, self._seqnumber())
        return SeqRange(first, first)

    def date(self) -> datetime:
        """§9 date: ``d-MMM-yyyy``, optionally quoted."""
        quoted = self.maybe(b'"')
        match = re.compile(rb"(\d{1,2})-([A-Za-z]{3})-(\d{4})").match(self.data, self.pos)
        if match is None:
            raise SyntaxProblem("Expected a date like 1-Feb-2024")
        self.pos = match.end()
        if quoted:
            self.expect(b'"')
        month = match.group(2).decode().upper()
        if month not in _MONTHS:
            raise SyntaxProblem("Expected a date like 1-Feb-2024")
        try:
            return datetime(
                int(match.group(3)), _MONTHS.index(month) + 1, int(match.group(1)), tzinfo=UTC
            )
        except ValueError:
            raise SyntaxProblem("No such date") from None

    def date_time(self) -> datetime:
        """§9 date-time: ``"dd-MMM-yyyy hh:mm:ss +zzzz"``."""
        match = re.compile(
            rb'"([ \d]\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"'
        ).match(self.data, self.pos)
        if match is None:
            raise SyntaxProblem('Expected a date-time like "01-Feb-2024 10:00:00 +0000"')
        self.pos = match.end()
        g = [x.decode() for x in match.groups()]
        if g[1].upper() not in _MONTHS:
            raise SyntaxProblem("Bad month in date-time")
        offset = timedelta(hours=int(g[7]), minutes=int(g[8]))
        try:
            return datetime(
                int(g[2]),
                _MONTHS.index(g[1].upper()) + 1,
                int(g[0]),
                int(g[3]),
                int(g[4]),
                int(g[5]),
                tzinfo=timezone(-offset if g[6] == "-" else offset),
            )
        except ValueError:
            raise SyntaxProblem("No such date-time") from None


def _text(data: bytes) -> str:
    # Quoted strings are 7-bit by RFC 3501, but UTF-8 from modern clients is common.
    return data.decode("utf-8", "surrogateescape")


_CONTROL_IN_NAME = "Mailbox names cannot contain NUL or other control characters"


def _has_control(name: str) -> bool:
    return any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in name)


def canonical_charset(name: str) -> str:
    """``utf8``, ``UTF8``, ``utf-8``, ``us-ascii``, ``ascii``… → ``UTF-8`` / ``US-ASCII``;
    other names upper-cased (the session answers NO [BADCHARSET] for those, §6.4.4)."""
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        return name.upper()
    return {"utf-8": "UTF-8", "ascii": "US-ASCII"}.get(codec, name.upper())


def decode_mailbox(raw: str, *, pattern: bool = False) -> str:
    """A wire mailbox name to its stored form; INBOX is case-insensitive (§5.1).

    RFC 3501 §5.1.3: a 7-bit name is modified UTF-7, and one that is not valid modified
    UTF-7 is refused (a real server would refuse it, so the client's bug shows here). A
    name with 8-bit characters is taken as UTF-8, as clients that skip the encoding send
    it (RFC 6855 names). Control characters, NUL first, are never part of a name.
    """
    if _has_control(raw):
        raise SyntaxProblem(_CONTROL_IN_NAME)
    if raw.isascii():
        try:
            name = utf7.decode(raw)
        except utf7.Utf7Error as exc:
            raise SyntaxProblem(
                f"Mailbox name {raw!r} is not valid modified UTF-7 (RFC 3501 §5.1.3): {exc.hint};"
                ' write "&" as "&-" and other non-ASCII characters as &...- base64'
            ) from None
    else:
        name = raw
        if any(0xDC80 <= ord(c) <= 0xDCFF for c in name):  # undecodable bytes, kept escaped
            raise SyntaxProblem("Mailbox name is neither modified UTF-7 nor valid UTF-8")
    if _has_control(name):
        raise SyntaxProblem(_CONTROL_IN_NAME)
    if name.upper() == "INBOX":
        return "INBOX"
    if not pattern and name.upper().startswith("INBOX/"):
        return "INBOX" + name[5:]
    return name


# --- per-command argument parsers ------------------------------------------------------


def _no_args(r: _Reader, tag: str, name: str, uid: bool) -> Command:
    return Command(tag, name, uid=uid)


def _authenticate(r: _Reader, tag: str, name: str, uid: bool) -> Command:
    r.sp()
    mechanism = r.atom("a SASL mechanism").upper()
    initial: bytes | None = None
    if r.maybe(b" "):
        # RFC 4959: base64, or "=" for an empty initial response.
        if r.maybe(b"=") and r.at_end():
            initial = b""
        else:
            initial = r._run(_BASE64_CHARS)
            if not initial:
                raise SyntaxProblem("Bad initial response")
    return Authenticate(tag, name, mechanism, initial)


def _login(r: _Reader, tag: str, name: str, uid: bool) -> Command:
    r.sp()
    user = r.astring()
    r.sp()
    return Login(tag, name, user, r.astring())


def _mailbox(r: _Reader, tag: str, name: str, uid: bool) -> Command:
    r.sp()
    return MailboxCommand(tag, name, r.mailbox())


def _rename(r: _Reader, tag: str, name: str, uid: bool) -> Command:
    r.sp()
    old = r.mailbox()
    r.sp()
    return Rename(tag, name, old, r.mailbox())


def _list(r: _Reader, tag: str, name: str, uid: bool) -> Command:
    r.sp()
    reference = r.mailbox() if r.peek() != 0x20 else ""
    r.sp()
    return ListCommand(tag, name, reference, r.list_mailbox())


def _status(r: _Reader, tag: str, name: str, uid: bool) -> Command:
    r.sp()
    mailbox = r.mailbox()
    r.sp()
    r.expect(b"(", "a list of status items")
    items = [r.atom("a status item").upper()]
    while r.maybe(b" "):
        items.append(r.atom("a status item").upper())
    r.expect(b")")
    for item in items:
        if item not in _STATUS_ITEMS:
            raise SyntaxProblem(f"Unknown status item {item}")
    return Status(tag, name, mailbox, tuple(items))


def _append(r: _Reader, tag: str, name: str, uid: bool) -> Command:
    r.sp()
    mailbox = r.mailbox()
    r.sp()
    flags: tuple[str, ...] = ()
    date: datetime | None = None
    if r.peek() == 0x28:
        flags = r.flag_list()
        r.sp()
    if r.peek() == 0x22:
        date = r.date_time()
        r.sp()
    if not r.at_literal():
        raise SyntaxProblem("APPEND needs the message as a literal")
    message = r.literal()
    return Append(tag, name, mailbox, flags, date, message)


def _search(r: _Reader, tag: str, name: str, uid: bool) -> Command:
    r.sp()
    charset: str | None = None
    if r.data[r.pos : r.pos + 8].upper() == b"CHARSET ":
        r.pos += 8
        charset = canonical_charset(r.astring())
        r.sp()
    keys = [_search_key(r)]
    while r.maybe(b" "):
        keys.append(_search_key(r))
    return Search(tag, name, charset, SearchKey("AND", tuple(keys)), uid=uid)


def _search_key(r: _Reader, depth: int = 0) -> SearchKey:
    if depth > r.max_nesting:
        raise SyntaxProblem(f"Search keys nested more than {r.max_nesting} levels deep")
    if r.maybe(b"("):
        keys = [_search_key(r, depth + 1)]
        while r.maybe(b" "):
            keys.append(_search_key(r, depth + 1))
        r.expect(b")")
        return SearchKey("AND", tuple(keys))
    char = r.peek()
    if char == 0x2A or 0x30 <= char <= 0x39:
        return SearchKey("SEQSET", (r.seqset(),))
    op = r.atom("a search key").upper()
    if op in SEARCH_NO_ARG:
        return SearchKey(op)
    if op not in _SEARCH_WITH_ARGS:
        raise SyntaxProblem(f"Unknown search key {op}")
    r.sp()
    if op in SEARCH_STRING_ARG:
        return SearchKey(op, (r.astring(),))
    if op in SEARCH_DATE_ARG:
        return SearchKey(op, (r.date().date(),))
    if op in SEARCH_NUMBER_ARG:
        return SearchKey(op, (r.number(),))
    if op in SEARCH_FLAG_ARG:
        return SearchKey(op, (r.flag(),))
    if op == "HEADER":
        field_name = r.astring()
        r.sp()
        return SearchKey(op, (field_name, r.astring()))
    if op == "UID":
        return SearchKey(op, (r.seqset(),))
    if op == "NOT":
        return SearchKey(op, (_search_key(r, depth + 1),))
    if op == "OR":
        left = _search_key(r, depth + 1)
        r.sp()
        return SearchKey(op, (left, _search_key(r, depth + 1)))
    raise SyntaxProblem(f"Unknown search key {op}")


def _fetch(r: _Reader, tag: str, name: str, uid: bool) -> Command:
    r.sp()
    seqset = r.seqset()
    r.sp()
    attrs: list[FetchAttr] = []
    if r.maybe(b"("):
        attrs.append(_fetch_attr(r))
        while r.maybe(b" "):
            attrs.append(_fetch_attr(r))
        r.expect(b")")
    else:
        start = r.pos
        word = r._run(_ATOM_CHARS).decode("ascii").upper()
        if word in FETCH_MACROS:
            attrs = [FetchAttr(n) for n in FETCH_MACROS[word]]
        else:
            r.pos = start
            attrs.append(_fetch_attr(r))
    return Fetch(tag, name, seqset, tuple(attrs), uid=uid)


def _fetch_attr(r: _Reader) -> FetchAttr:
    start = r.pos
    word = r._run(_ATOM_CHARS - {ord("[")}).decode("ascii").upper()
    if word in ("BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK") and r.peek() == 0x5B:
        if word.startswith("BINARY"):
            raise SyntaxProblem("BINARY is not supported")
        r.pos += 1
        section = _section(r)
        r.expect(b"]")
        partial: tuple[int, int] | None = None
        if r.maybe(b"<"):
            origin = r.number()
            r.expect(b".", "<origin.count>")
            partial = (origin, r.nz_number("an octet count"))
            r.expect(b">")
        return FetchAttr("BODY", section, partial, peek=word == "BODY.PEEK")
    if word in _FETCH_SIMPLE:
        return FetchAttr(word)
    r.pos = start
    raise SyntaxProblem(f"Unknown fetch item {word or r.data[r.pos : r.pos + 20]!r}")


def _section(r: _Reader) -> Section:
    parts: list[int] = []
    while 0x31 <= r.peek() <= 0x39:
        parts.append(r.nz_number("a part number"))
        if not r.maybe(b"."):
            return Section(tuple(parts))
    if r.peek() == 0x5D:
        if parts:
            raise SyntaxProblem("A section may not end with a dot")
        return Section()
    text = r._run(_ATOM_CHARS - {ord("[")}).decode("ascii").upper()
    if text in ("HEADER", "TEXT"):
        return Section(tuple(parts), text)
    if text == "MIME" and parts:
        return Section(tuple(parts), text)
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        r.sp()
        r.expect(b"(", "a list of header field names")
        names = [r.astring().upper()]
        while r.maybe(b" "):
            names.append(r.astring().upper())
        r.expect(b")")
        return Section(tuple(parts), text, tuple(names))
    raise SyntaxProblem(f"Unknown section {text!r}")


def _store(r: _Reader, tag: str, name: str, uid: bool) -> Command:
    r.sp()
    seqset = r.seqset()
    r.sp()
    mode: Literal["", "+", "-"] = ""
    if r.maybe(b"+"):
        mode = "+"
    elif r.maybe(b"-"):
        mode = "-"
    item = r.atom("FLAGS or FLAGS.SILENT").upper()
    if item not in ("FLAGS", "FLAGS.SILENT"):
        raise SyntaxProblem("Expected FLAGS or FLAGS.SILENT")
    r.sp()
    if r.peek() == 0x28:
        flags = r.flag_list()
    else:
        flag_items = [r.flag()]
        while r.maybe(b" "):
            flag_items.append(r.flag())
        flags = tuple(flag_items)
    return Store(tag, name, seqset, mode, item.endswith(".SILENT"), flags, uid=uid)


def _copy(r: _Reader, tag: str, name: str, uid: bool) -> Command:
    r.sp()
    seqset = r.seqset()
    r.sp()
    return CopyCommand(tag, name, seqset, r.mailbox(), uid=uid)


def _uid_expunge(r: _Reader, tag: str, name: str, uid: bool) -> Command:
    r.sp()
    return UidExpunge(tag, name, r.seqset(), uid=True)


def _enable(r: _Reader, tag: str, name: str, uid: bool) -> Command:
    caps = []
    while r.maybe(b" "):
        caps.append(r.atom("a capability").upper())
    if not caps:
        raise SyntaxProblem("ENABLE needs at least one capability")
    return Enable(tag, name, tuple(caps))


def _id(r: _Reader, tag: str, name: str, uid: bool) -> Command:
    r.sp()
    if r.data[r.pos : r.pos + 3].upper() == b"NIL":
        r.pos += 3
        return Id(tag, name, None)
    r.expect(b"(", "NIL or a parameter list")
    params: list[tuple[str, str | None]] = []
    if not r.maybe(b")"):
        while True:
            key = _text(r.string())
            r.sp()
            params.append((key, r.nstring()))
            if r.maybe(b")"):
                break
            r.sp()
    if len(params) > 30:
        raise SyntaxProblem("At most 30 ID parameters")
    return Id(tag, name, tuple(params))


_Args = Callable[[_Reader, str, str, bool], Command]
_COMMANDS: dict[str, _Args] = {
    "CAPABILITY": _no_args,
    "NOOP": _no_args,
    "LOGOUT": _no_args,
    "STARTTLS": _no_args,
    "AUTHENTICATE": _authenticate,
    "LOGIN": _login,
    "SELECT": _mailbox,
    "EXAMINE": _mailbox,
    "CREATE": _mailbox,
    "DELETE": _mailbox,
    "RENAME": _rename,
    "SUBSCRIBE": _mailbox,
    "UNSUBSCRIBE": _mailbox,
    "LIST": _list,
    "LSUB": _list,
    "STATUS": _status,
    "APPEND": _append,
    "CHECK": _no_args,
    "CLOSE": _no_args,
    "UNSELECT": _no_args,
    "EXPUNGE": _no_args,
    "SEARCH": _search,
    "FETCH": _fetch,
    "STORE": _store,
    "COPY": _copy,
    "MOVE": _copy,
    "IDLE": _no_args,
    "NAMESPACE": _no_args,
    "ENABLE": _enable,
    "ID": _id,
}
_UID_COMMANDS: dict[str, _Args] = {
    "FETCH": _fetch,
    "SEARCH": _search,
    "STORE": _store,
    "COPY": _copy,
    "MOVE": _copy,
    "EXPUNGE": _uid_expunge,
}


def parse_command(data: bytes, *, max_nesting: int = DEFAULT_MAX_NESTING) -> Command | ParseError:
    """Parse one framed command, CRLF included."""
    r = _Reader(data, max_nesting)
    try:
        tag = r.tag()
    except SyntaxProblem:
        return ParseError("*", "Missing or invalid tag")
    try:
        r.sp()
        name = r.atom("a command name").upper()
        uid = False
        table = _COMMANDS
        if name == "UID":
            r.sp()
            uid = True
            table = _UID_COMMANDS
            name = r.atom("a UID command").upper()
        handler = table.get(name)
        if handler is None:
            return ParseError(tag, f"Unknown command {'UID ' if uid else ''}{name}")
        command = handler(r, tag, name, uid)
        r.end()
        return command
    except SyntaxProblem as exc:
        return ParseError(tag, f"Syntax error: {exc}")
    except RecursionError:  # a max_nesting set beyond what the interpreter's stack holds
        return ParseError(tag, "Syntax error: nested too deeply")
