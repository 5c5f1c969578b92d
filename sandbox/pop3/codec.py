"""POP3 bytes in, commands out; replies rendered by pure functions. No sockets, no store.

The codec splits the client's stream into lines, bounded by ``max_line``: a longer line
is dropped up to its LF and reported as ``LineTooLong`` so the session can answer
``-ERR`` and go on — the buffer never grows past the limit, whatever the peer sends.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

# RFC 2449 §4: a command line is at most 255 octets including CRLF; clients send longer
# AUTH lines and user names, so the default is generous and configurable.
DEFAULT_MAX_LINE: Final = 512
CRLF: Final = b"\r\n"
_BARE_LF = re.compile(rb"(?<!\r)\n")


@dataclass(frozen=True)
class Command:
    """One client line: ``name`` upper-cased, ``args`` split on spaces, ``line`` raw."""

    name: str
    args: tuple[str, ...]
    line: bytes  # without the line ending; AUTH continuation lines are read from here


@dataclass(frozen=True)
class LineTooLong:
    """A line went past the limit; its bytes were thrown away."""

    limit: int


class NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()


class Pop3Codec:
    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        if max_line < 8:
            raise ValueError("max_line must allow at least a short command")
        self.max_line = max_line
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer already known to hold no LF
        self._discarding = False

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def receive_data(self, data: bytes) -> None:
        self._buffer += data

    def discard_buffer(self) -> None:
        """Forget unread input: RFC 2595 §4 / RFC 3207 §4.2, nothing sent in plaintext
        before the TLS handshake may be acted on after it (command injection)."""
        self._buffer.clear()
        self._scanned = 0
        self._discarding = False

    def next_command(self) -> Command | LineTooLong | NeedData:
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            if end < 0:
                if len(self._buffer) > self.max_line:
                    # keep nothing of an overlong line; remember to drop its tail too
                    self._buffer.clear()
                    self._discarding = True
                self._scanned = len(self._buffer)
                return NEED_DATA
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            self._scanned = 0
            if self._discarding or end + 1 > self.max_line:
                self._discarding = False
                return LineTooLong(self.max_line)
            return parse_line(line[:-1] if line.endswith(b"\r") else line)


def parse_line(line: bytes) -> Command:
    """Split a line into a command; garbage becomes a command no state allows."""
    text = line.decode("utf-8", "replace")
    # RFC 1939 §3: keyword and arguments are separated by a single SPACE; be lenient and
    # accept runs of blanks, as Dovecot does.
    parts = text.split()
    if not parts:
        return Command("", (), line)
    return Command(parts[0].upper(), tuple(parts[1:]), line)


# --- replies ------------------------------------------------------------------------------


def ok(text: str = "") -> bytes:
    return b"+OK " + text.encode() + CRLF if text else b"+OK" + CRLF


def err(text: str, code: str | None = None) -> bytes:
    """``-ERR [CODE] text``: RFC 2449 §8 response codes (IN-USE, AUTH, SYS/TEMP, ...)."""
    prefix = f"[{code}] " if code else ""
    return f"-ERR {prefix}{text}".encode() + CRLF


def to_wire(raw: bytes) -> bytes:
    """A stored message as POP3 sends it: CRLF line endings, ending with CRLF."""
    if raw.count(b"\n") != raw.count(CRLF):
        raw = _BARE_LF.sub(CRLF, raw)
    if raw and not raw.endswith(CRLF):
        raw += CRLF
    return raw


def dot_stuff(wire: bytes) -> bytes:
    """RFC 1939 §3: a line that starts with "." gets one more; ``wire`` has CRLF endings."""
    if b"\n." in wire:
        wire = wire.replace(b"\n.", b"\n..")  # every line but the first starts after LF
    return b"." + wire if wire.startswith(b".") else wire


def multiline(body: bytes | Iterable[bytes], first: bytes = b"+OK\r\n") -> bytes:
    """A multi-line reply: ``first`` line, the body dot-stuffed, then the "." line.

    ``body`` is either one message (any line endings) or lines without their endings.
    """
    wire = to_wire(body) if isinstance(body, bytes) else b"".join(line + CRLF for line in body)
    return first + dot_stuff(wire) + b".\r\n"


def top(raw: bytes, lines: int) -> bytes:
    """RFC 1939 §7 TOP: the header, the blank line, then ``lines`` lines of the body."""
    wire = to_wire(raw)
    split = wire.find(b"\r\n\r\n")
    if split < 0:  # no body at all: the whole message is header
        return wire
    head_end = split + 4
    if lines <= 0:
        return wire[:head_end]
    pos = head_end
    for _ in range(lines):
        nxt = wire.find(b"\r\n", pos)
        if nxt < 0:
            return wire
        pos = nxt + 2
    return wire[:pos]
