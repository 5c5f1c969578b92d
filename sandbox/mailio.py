"""Mail in and out of the store: mbox files, Maildir folders and ``.eml`` files.

Theory of operation: reading turns each source into ``Found`` messages (the bytes exactly
as in the file, plus what an mbox ``From_`` line says); ``new_message`` makes each one a
``NewMessage`` for the one ingest path, a copy in the INBOX of every recipient (held when
the domain is not a sandbox domain). Writing is the reverse, one ``.eml`` file per message
or one mbox.

Round trips are byte for byte: a message's bytes are stored untouched, and an mbox
message keeps its ``From_`` line in its ``imported`` hop so that export writes the very
same line again. mbox is read and written as mboxrd: a body line matching ``>*From `` gets
one more ``>`` on the way out and loses one on the way in, and every message is followed
by an empty line. The line ending of the ``From_`` line (LF or CRLF) is the one used for
that empty line.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sandbox.config import Config
from sandbox.mime import summarize
from sandbox.store import (
    INBOX,
    Copy,
    Hop,
    NewMessage,
    Outcome,
    Step,
    domain_of,
    normalize_address,
)

SOURCE = "import"
FROM_LINE_KEY = "mbox_from_line"
_QUOTED_FROM = re.compile(rb"^(>*)From ")
_ASCTIME = "%a %b %d %H:%M:%S %Y"


class ImportProblem(ValueError):
    """A source that cannot be imported; the message names the file and what to do."""


@dataclass(frozen=True)
class Found:
    raw: bytes
    origin: str  # the file, and for an mbox the message's number in it ("inbox.mbox#3")
    format: str  # mbox, maildir or eml
    from_line: bytes | None = None  # an mbox message's From_ line, with its line ending

    @property
    def envelope_from(self) -> str | None:
        if self.from_line is None:
            return None
        parts = self.from_line.split(None, 2)
        return parts[1].decode("utf-8", "replace") if len(parts) > 1 else None

    @property
    def received_at(self) -> float | None:
        """The From_ line's date (asctime, UTC by convention), when it reads as one."""
        if self.from_line is None:
            return None
        parts = self.from_line.decode("utf-8", "replace").split(None, 2)
        if len(parts) < 3:
            return None
        try:
            return float(calendar.timegm(time.strptime(" ".join(parts[2].split()), _ASCTIME)))
        except ValueError:
            return None


# --- reading --------------------------------------------------------------------------


def kind_of(path: Path) -> str:
    """maildir (a folder with cur/ or new/), eml-folder (any other folder), mbox or eml."""
    if path.is_dir():
        if (path / "cur").is_dir() or (path / "new").is_dir():
            return "maildir"
        return "eml-folder"
    with path.open("rb") as fh:
        head = fh.read(5)
    return "mbox" if head == b"From " else "eml"


def read_sources(paths: Iterable[Path]) -> Iterator[Found]:
    for path in paths:
        kind = kind_of(path)
        if kind == "maildir":
            yield from read_maildir(path)
        elif kind == "eml-folder":
            files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".eml")
            if not files:
                raise ImportProblem(f"{path}: no .eml files, and not a Maildir (no cur/, new/)")
            for file in files:
                yield Found(file.read_bytes(), str(file), "eml")
        elif kind == "mbox":
            yield from read_mbox(path.read_bytes(), str(path))
        else:
            yield Found(path.read_bytes(), str(path), "eml")


def read_maildir(path: Path) -> Iterator[Found]:
    """Messages of new/ and cur/ (tmp/ holds unfinished deliveries), by file name."""
    files = [
        file
        for sub in ("new", "cur")
        if (path / sub).is_dir()
        for file in (path / sub).iterdir()
        if file.is_file() and not file.name.startswith(".")
    ]
    for file in sorted(files, key=lambda f: f.name):
        yield Found(file.read_bytes(), str(file), "maildir")


def read_mbox(data: bytes, origin: str) -> Iterator[Found]:
    """mboxrd: a From_ line starts each message; the empty line before the next goes."""
    from_line: bytes | None = None
    lines: list[bytes] = []
    number = 0
    for line in data.splitlines(keepends=True):
        if line.startswith(b"From "):
            if from_line is not None:
                number += 1
                yield _mbox_message(from_line, lines, f"{origin}#{number}")
            from_line, lines = line, []
        elif from_line is None:
            if line.strip():
                raise ImportProblem(f"{origin}: not an mbox (text before the first From line)")
        else:
            lines.append(_QUOTED_FROM.sub(_unquote, line, count=1))
    if from_line is not None:
        yield _mbox_message(from_line, lines, f"{origin}#{number + 1}")


def _unquote(match: re.Match[bytes]) -> bytes:
    quotes = match.group(1)
    return quotes[1:] + b"From " if quotes else b"From "


def _mbox_message(from_line: bytes, lines: list[bytes], origin: str) -> Found:
    if lines and lines[-1] in (b"\n", b"\r\n"):
        lines = lines[:-1]
    return Found(b"".join(lines), origin, "mbox", from_line)


# --- into the store -------------------------------------------------------------------


def new_message(found: Found, config: Config, mailbox: str | None = None) -> NewMessage:
    """A copy in the INBOX of each recipient (To and Cc, or ``mailbox``)."""
    summary = summarize(found.raw)
    if mailbox is not None:
        recipients = [normalize_address(mailbox)]
    else:
        addresses = (normalize_address(a) for a in (*summary.to, *summary.cc))
        recipients = list(dict.fromkeys(a for a in addresses if "@" in a))
    if not recipients:
        raise ImportProblem(
            f"{found.origin}: no recipient in To or Cc; give one with --mailbox ADDRESS"
        )
    detail: dict[str, object] = {"file": found.origin, "format": found.format}
    if found.from_line is not None:
        detail[FROM_LINE_KEY] = found.from_line.decode("latin-1")  # bytes, one per char
    copies = tuple(
        Copy(address, INBOX, held=not config.is_fake_domain(domain_of(address)))
        for address in recipients
    )
    hops = (Hop(Step.IMPORTED, Outcome.IMPORTED, {**detail, "mailboxes": recipients}),)
    envelope_from = found.envelope_from or summary.from_addr or ""
    return NewMessage(
        raw=found.raw,
        envelope_from="" if envelope_from == "MAILER-DAEMON" else envelope_from,
        envelope_to=tuple(recipients),
        source=SOURCE,
        copies=copies,
        hops=hops,
        received_at=time.time() if found.received_at is None else found.received_at,
    )


# --- writing --------------------------------------------------------------------------


def from_line_of(hops: Iterable[Hop]) -> bytes | None:
    for hop in hops:
        if hop.step == Step.IMPORTED and isinstance(hop.detail.get(FROM_LINE_KEY), str):
            return str(hop.detail[FROM_LINE_KEY]).encode("latin-1")
    return None


def mbox_entry(
    raw: bytes, envelope_from: str, received_at: float, from_line: bytes | None = None
) -> bytes:
    """One message as mboxrd: From_ line, quoted body, empty line."""
    if from_line is None:
        first = raw.split(b"\n", 1)[0]
        newline = b"\r\n" if first.endswith(b"\r") else b"\n"
        sender = (envelope_from or "MAILER-DAEMON").encode("utf-8")
        stamp = time.asctime(time.gmtime(received_at)).encode()
        from_line = b"From " + sender + b" " + stamp + newline
    newline = b"\r\n" if from_line.endswith(b"\r\n") else b"\n"
    body = b"".join(
        _QUOTED_FROM.sub(rb">\1From ", line, count=1) for line in raw.splitlines(keepends=True)
    )
    if body and not body.endswith(b"\n"):
        body += newline
    return from_line + body + newline


def eml_name(index: int) -> str:
    return f"{index:06d}.eml"
