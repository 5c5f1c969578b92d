"""A drop-in ``sendmail`` for apps that pipe mail to it (PHP's mail(), cron, git send-email).

Theory of operation: read the message from stdin, work out the envelope the way sendmail
and Postfix do, add the headers a mail submission agent adds when they are missing, and
submit it to the sandbox's submission server over SMTP. Nothing is queued locally: when
no sandbox listens, the caller hears so at once through the exit code.

Flags follow sendmail(8), parsed like getopt (``-ti`` is ``-t -i``, ``-fme@x`` is ``-f
me@x``):

- ``-t``: recipients from the To, Cc and Bcc headers, added to those given as arguments
  (Postfix's reading; classic sendmail subtracted them). Bcc is always removed.
- ``-i``, ``-oi``: a line with a lone dot does not end the message (without them it does).
- ``-f FROM`` (also ``-r``): envelope sender; without it the From header's address, else
  the user at this host. ``-F NAME``: the full name in a From header made for the caller.
- Accepted and ignored, as callers pass them: ``-v``, ``-m``, ``-n``, ``-U``, ``-G``,
  ``-bm``, ``-od…``, ``-oe…``, ``-om``, ``-B TYPE``, ``-N DSN``, ``-R RET``, ``-V ENVID``,
  ``-A…``, ``-L TAG``, ``-O OPT=VALUE``, ``-h HOPS``. Any other flag, and modes other
  than ``-bm``, exit 64.
- ``--smtp-port N``, ``--host IP``, ``--config FILE``: where the sandbox listens (also
  from ``MAIL_SANDBOX_*`` and the configuration file, as for every command).

Exit codes are sendmail's (sysexits.h), since that is what callers of sendmail check.
"""

from __future__ import annotations

import getpass
import re
import smtplib
import socket
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.utils import formataddr, formatdate, getaddresses, make_msgid
from typing import Any, BinaryIO

from sandbox.config import Config, ConfigError, load_config

EX_OK = 0
EX_USAGE = 64  # bad flags, no recipients
EX_DATAERR = 65  # the server refused the message (5xx after MAIL or DATA)
EX_NOUSER = 67  # the server refused a recipient (5xx)
EX_UNAVAILABLE = 69  # nothing listens where the sandbox should be
EX_TEMPFAIL = 75  # a 4xx, a dropped connection, a timeout: try again later
EX_CONFIG = 78  # the sandbox configuration is bad

SEND_TIMEOUT = 30.0
# getopt letters: these stand alone (and may be bundled: -ti) ...
_NO_ARGUMENT = frozenset("timvnUG")
# ... these take a value, in the same word or the next (-fme@x, -f me@x).
_WITH_ARGUMENT = frozenset("frFoBNRVbALOh")
_LONG_OPTIONS = {"--smtp-port": "smtp.port", "--host": "host", "--config": "config_file"}
_HEADER_NAME = re.compile(rb"^[!-9;-~]+:")


class SendmailError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Invocation:
    recipients: tuple[str, ...] = ()
    extract_recipients: bool = False  # -t
    dot_ends_input: bool = True  # cleared by -i / -oi
    sender: str | None = None  # -f / -r
    full_name: str | None = None  # -F
    verbose: bool = False
    flags: dict[str, Any] = field(default_factory=dict)  # config keys from the long options
    help: bool = False


def parse_args(args: Sequence[str]) -> Invocation:
    """sendmail's flags, getopt style; raises SendmailError(EX_USAGE) on anything else."""
    recipients: list[str] = []
    values: dict[str, Any] = {"dot_ends_input": True}
    flags: dict[str, Any] = {}
    words = list(args)
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        if word == "--":
            recipients += words[index:]
            break
        if word == "--help":
            values["help"] = True
            continue
        if word.startswith("--"):
            name, eq, value = word.partition("=")
            if name not in _LONG_OPTIONS:
                raise _usage(f"unknown option {name}")
            if not eq:
                if index >= len(words):
                    raise _usage(f"{name} needs a value")
                value = words[index]
                index += 1
            flags[_LONG_OPTIONS[name]] = _long_value(name, value)
            continue
        if not word.startswith("-") or word == "-":
            recipients.append(word)
            continue
        position = 1
        while position < len(word):
            letter = word[position]
            position += 1
            if letter in _NO_ARGUMENT:
                if letter == "t":
                    values["extract_recipients"] = True
                elif letter == "i":
                    values["dot_ends_input"] = False
                elif letter == "v":
                    values["verbose"] = True
                continue
            if letter not in _WITH_ARGUMENT:
                raise _usage(f"unknown option -{letter}")
            value = word[position:]
            if not value:
                if index >= len(words):
                    raise _usage(f"option -{letter} needs a value")
                value = words[index]
                index += 1
            _option_with_value(letter, value, values)
            break
    return Invocation(recipients=tuple(split_addresses(recipients)), flags=flags, **values)


def _option_with_value(letter: str, value: str, values: dict[str, Any]) -> None:
    if letter in "fr":
        values["sender"] = value.strip().strip("<>")
    elif letter == "F":
        values["full_name"] = value
    elif letter == "o":
        # -oi: RFC-less sendmail option "ignore dots"; -od (delivery mode), -oe (error
        # mode) and -om (me too) change nothing for a sandbox.
        if value == "i":
            values["dot_ends_input"] = False
        elif value[:1] not in ("d", "e", "m"):
            raise _usage(f"unknown option -o{value}")
    elif letter == "b" and value != "m":
        raise _usage(f"-b{value} is not supported: only -bm (read a message from stdin)")


def _long_value(name: str, value: str) -> Any:
    if name == "--smtp-port":
        try:
            port = int(value)
        except ValueError:
            raise _usage(f"{name} needs a port number, got {value!r}") from None
        if not 0 < port < 65536:
            raise _usage(f"{name} must be from 1 to 65535, got {port}")
        return port
    return value


def _usage(message: str) -> SendmailError:
    return SendmailError(EX_USAGE, f"{message} (see mail-sandbox sendmail --help)")


def split_addresses(values: Iterable[str]) -> list[str]:
    """Addresses from arguments or header values: "a@x, B <b@y>" → a@x, b@y."""
    return [address for _, address in getaddresses(list(values)) if address]


# --- the message -------------------------------------------------------------------------


def read_message(stream: BinaryIO, dot_ends_input: bool) -> bytes:
    """Up to end of input, or a line with a lone dot unless -i (the dot is not kept)."""
    if not dot_ends_input:
        return stream.read()
    lines = []
    for line in iter(stream.readline, b""):
        if line.rstrip(b"\r\n") == b".":
            break
        lines.append(line)
    return b"".join(lines)


@dataclass(frozen=True)
class Prepared:
    envelope_from: str
    recipients: tuple[str, ...]
    data: bytes  # CRLF line endings, ready for DATA


def prepare(
    raw: bytes, invocation: Invocation, *, user: str | None = None, host: str | None = None
) -> Prepared:
    """The envelope and the message as submitted: Bcc gone, From/Date/Message-ID added."""
    user = user or _login()
    host = host or socket.gethostname() or "localhost"  # never a DNS lookup (getfqdn)
    newline = b"\r\n" if b"\r\n" in raw.split(b"\n", 1)[0] + b"\n" else b"\n"
    fields, body = _split_headers(raw)
    values = _field_values(fields)
    recipients = list(invocation.recipients)
    if invocation.extract_recipients:
        recipients += split_addresses(
            values.get("to", []) + values.get("cc", []) + values.get("bcc", [])
        )
    recipients = list(dict.fromkeys(_qualify(r, host) for r in recipients if r))
    if not recipients:
        raise _usage("no recipients: give addresses as arguments, or -t to read To, Cc and Bcc")
    from_header = split_addresses(values.get("from", []))
    if invocation.sender is not None:
        envelope_from = invocation.sender
    elif from_header:
        envelope_from = from_header[0]
    else:
        envelope_from = f"{user}@{host}"
    envelope_from = _qualify(envelope_from, host)
    kept = [lines for lines in fields if _name(lines[0]) != b"bcc"]
    added: list[bytes] = []
    if "from" not in values:
        address = envelope_from or f"{user}@{host}"
        text = formataddr((invocation.full_name, address)) if invocation.full_name else address
        added.append(b"From: " + text.encode("utf-8") + newline)
    if "date" not in values:
        added.append(b"Date: " + formatdate(localtime=True).encode() + newline)
    if "message-id" not in values:
        domain = (envelope_from.rpartition("@")[2] or host).strip("<>") or "localhost"
        added.append(b"Message-ID: " + make_msgid(domain=domain).encode() + newline)
    header = b"".join(added) + b"".join(b"".join(lines) for lines in kept)
    message = header + newline + body
    return Prepared(envelope_from, tuple(recipients), re.sub(rb"\r?\n", b"\r\n", message))


def _qualify(address: str, host: str) -> str:
    """A bare local name (cron's ``root``) gets ``@host``, as sendmail and postfix do
    (append_at_myorigin): SMTP paths need a domain (RFC 5321 §4.1.2)."""
    return address if not address or "@" in address else f"{address}@{host}"


def _split_headers(raw: bytes) -> tuple[list[list[bytes]], bytes]:
    """Header fields (each its lines, continuation lines included) and the body.

    A blank line ends the header; so does a line that is no header field (sendmail reads
    it as the first line of the body).
    """
    fields: list[list[bytes]] = []
    lines = raw.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if line in (b"\n", b"\r\n"):
            return fields, b"".join(lines[index + 1 :])
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)
        elif _HEADER_NAME.match(line):
            fields.append([line if line.endswith(b"\n") else line + b"\n"])
        else:
            return fields, b"".join(lines[index:])
    return fields, b""


def _name(line: bytes) -> bytes:
    return line.partition(b":")[0].strip().lower()


def _field_values(fields: list[list[bytes]]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for lines in fields:
        text = b"".join(lines).decode("utf-8", "replace")
        name, _, value = text.partition(":")
        values.setdefault(name.strip().lower(), []).append(" ".join(value.split()))
    return values


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "nobody"


# --- submitting ---------------------------------------------------------------------------


def config_for(invocation: Invocation, base_flags: dict[str, Any] | None = None) -> Config:
    flags = dict(base_flags or {})
    flags.update(invocation.flags)
    config_file = flags.pop("config_file", None)
    try:
        return load_config(config_file=config_file, flags=flags)
    except ConfigError as exc:
        raise SendmailError(EX_CONFIG, f"bad configuration: {exc}") from None


def submit(config: Config, prepared: Prepared) -> str:
    """Send over SMTP; return the final reply or raise SendmailError with a sysexits code."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(config.host, config.host)
    port = config.smtp.port
    if port == 0:
        raise _usage("--smtp-port 0 means 'any free port' for serve; give the port it printed")
    options = []
    if not prepared.data.isascii():
        options.append("BODY=8BITMIME")
    if not all(a.isascii() for a in (prepared.envelope_from, *prepared.recipients)):
        options.append("SMTPUTF8")
    try:
        with smtplib.SMTP(host, port, timeout=SEND_TIMEOUT) as client:
            client.ehlo("mail-sandbox-sendmail")
            refused = client.sendmail(
                prepared.envelope_from, list(prepared.recipients), prepared.data, options
            )
            code, text = client.noop()
    except smtplib.SMTPRecipientsRefused as exc:
        raise _refused(exc.recipients) from None
    except smtplib.SMTPResponseException as exc:
        code = EX_TEMPFAIL if 400 <= exc.smtp_code < 500 else EX_DATAERR
        raise SendmailError(
            code, f"the sandbox refused the message: {exc.smtp_code} {_text(exc.smtp_error)}"
        ) from None
    except (smtplib.SMTPServerDisconnected, TimeoutError) as exc:
        raise SendmailError(EX_TEMPFAIL, f"the sandbox at {host}:{port} hung up: {exc}") from None
    except smtplib.SMTPException as exc:
        raise SendmailError(EX_TEMPFAIL, f"SMTP failed: {exc}") from None
    except OSError as exc:
        raise SendmailError(
            EX_UNAVAILABLE,
            f"cannot reach the sandbox at {host}:{port} ({exc.strerror or exc}):"
            " start it with `mail-sandbox serve`, or pass --smtp-port",
        ) from None
    if refused:
        raise _refused(refused)
    return f"{code} {_text(text)}"


def _refused(recipients: dict[str, tuple[int, bytes]]) -> SendmailError:
    codes = [code for code, _ in recipients.values()]
    detail = "; ".join(f"{rcpt}: {code} {_text(msg)}" for rcpt, (code, msg) in recipients.items())
    exit_code = EX_TEMPFAIL if all(400 <= c < 500 for c in codes) else EX_NOUSER
    return SendmailError(exit_code, f"the sandbox refused recipients: {detail}")


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def run(
    args: Sequence[str], stdin: BinaryIO, base_flags: dict[str, Any] | None = None
) -> tuple[Invocation, str]:
    """Parse, read, prepare, submit; returns the invocation and the server's reply."""
    invocation = parse_args(args)
    if invocation.help:
        return invocation, ""
    config = config_for(invocation, base_flags)
    raw = read_message(stdin, invocation.dot_ends_input)
    return invocation, submit(config, prepare(raw, invocation))


USAGE = __doc__ or ""


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m sandbox.sendmail`` (or a script named sendmail): same as the command."""
    try:
        invocation, reply = run(sys.argv[1:] if argv is None else argv, sys.stdin.buffer)
    except SendmailError as exc:
        print(f"sendmail: {exc.message}", file=sys.stderr)
        sys.exit(exc.code)
    if invocation.help:
        print(USAGE)
    elif invocation.verbose:
        print(f"sendmail: {reply}", file=sys.stderr)
    sys.exit(EX_OK)


if __name__ == "__main__":
    main()
