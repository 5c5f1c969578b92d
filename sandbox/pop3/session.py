"""The POP3 state machine (RFC 1939, with RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH).

Theory of operation: a session starts in AUTHORIZATION. A successful USER+PASS, APOP or
AUTH PLAIN locks the user's maildrop, snapshots its messages (numbered 1..n for the
whole session) and enters TRANSACTION. There DELE only marks; RSET unmarks. QUIT in
TRANSACTION enters UPDATE, the one place where marked messages are really removed
(moved to Trash); any other end — a dropped connection, the idle timer, too many bad
commands — closes without UPDATE, so nothing is deleted (RFC 1939 §6). QUIT in
AUTHORIZATION just closes.

``ALLOWED`` says which commands each state accepts; ``TRANSITIONS`` is every state change.
Both are checked before a command reaches its ``do_<name>`` method, so those methods only
handle commands that are legal where they are. Errors are exceptions that carry their
own ``-ERR`` reply; the session renders them in ``handle``.
"""

from __future__ import annotations

import base64
import binascii
import enum
import itertools
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from sandbox.pop3.backend import (
    ALL_USER,
    FETCH_BATCH,
    FETCH_BATCH_BYTES,
    Maildrop,
    MaildropEntry,
    MaildropInUse,
    Pop3Backend,
    canonical_user,
)
from sandbox.pop3.codec import (
    DEFAULT_MAX_LINE,
    Command,
    LineTooLong,
    dot_stuff,
    err,
    multiline,
    ok,
    to_wire,
    top,
)


class State(enum.Enum):
    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"
    CLOSED = "CLOSED"


_A, _T, _U, _C = State.AUTHORIZATION, State.TRANSACTION, State.UPDATE, State.CLOSED

# RFC 1939 §4-§7 and RFC 2449 §5 (CAPA in both states), RFC 2595 §4 (STLS before login).
ALLOWED: Final[Mapping[State, frozenset[str]]] = {
    _A: frozenset({"USER", "PASS", "APOP", "AUTH", "STLS", "CAPA", "QUIT"}),
    _T: frozenset({"STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL", "CAPA", "QUIT"}),
    _U: frozenset(),
    _C: frozenset(),
}
# (state, what happened) → next state. "login" is a successful USER/PASS, APOP or AUTH.
TRANSITIONS: Final[Mapping[tuple[State, str], State]] = {
    (_A, "login"): _T,
    (_A, "QUIT"): _C,
    (_T, "QUIT"): _U,
    (_U, "updated"): _C,
    (_A, "dropped"): _C,
    (_T, "dropped"): _C,
    (_U, "dropped"): _C,
}
KNOWN_COMMANDS: Final = frozenset().union(*ALLOWED.values())


@dataclass(frozen=True)
class Pop3Settings:
    """Every POP3 limit, explicit (DESIGN.md); the runtime builds this from the config."""

    # RFC 1939 §3: an autologout timer, if any, of at least 10 minutes.
    idle_timeout: float = 600.0
    max_line: int = DEFAULT_MAX_LINE
    max_bad_commands: int = 10
    require_tls_for_auth: bool = False
    implementation: str = "mail-sandbox"


@dataclass(frozen=True)
class Reply:
    """What the adapter does after a command: write ``data``, then maybe close or STLS."""

    data: bytes
    close: bool = False
    start_tls: bool = False


class Pop3Error(Exception):
    """A refusal that renders itself as ``-ERR [CODE] text``."""

    counts_as_bad = False  # True when the peer sent something invalid (the budget)
    closes = False

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code

    def reply(self) -> bytes:
        return err(self.text, self.code)


class BadCommand(Pop3Error):
    """The peer sent garbage: unknown command, bad arguments, wrong state, long line."""

    counts_as_bad = True


class Refused(Pop3Error):
    """A valid command that cannot be done now: no such message, wrong password, ..."""


class ServerFailure(Pop3Error):
    """We failed (the store); RFC 2449 §8.1.2 [SYS/TEMP], and the session ends."""

    closes = True

    def __init__(self, text: str) -> None:
        super().__init__(text, "SYS/TEMP")


log = logging.getLogger(__name__)
_greetings = itertools.count(1)


class Pop3Session:
    def __init__(
        self,
        backend: Pop3Backend,
        *,
        hostname: str,
        settings: Pop3Settings | None = None,
        tls_active: bool = False,
        tls_available: bool = False,
    ) -> None:
        self.backend = backend
        self.hostname = hostname
        self.settings = settings or Pop3Settings()
        self.tls_active = tls_active
        self.tls_available = tls_available
        self.state = State.AUTHORIZATION
        # RFC 1939 §7 APOP: a msg-id style timestamp, different for every greeting.
        self.timestamp = f"<{os.getpid()}.{time.time_ns()}.{next(_greetings)}@{hostname}>"
        self.user: str | None = None
        self.bad_commands = 0
        self._pending_user: str | None = None  # after a good USER, until PASS
        self._sasl_pending = False  # after "AUTH PLAIN" without an initial response
        self._maildrop: Maildrop | None = None
        self._entries: Sequence[MaildropEntry] = ()
        self._deleted: set[int] = set()  # message numbers marked by DELE
        self._retrieved: dict[int, None] = {}  # entry ids, in order, for the journeys
        self._cache: dict[int, bytes] = {}  # read-ahead of raw messages by entry id

    def greeting(self) -> bytes:
        return ok(f"{self.settings.implementation} POP3 ready {self.timestamp}")

    def tls_started(self) -> None:
        """RFC 2595 §4: after the handshake, forget anything learnt before it."""
        self.tls_active = True
        self._pending_user = None
        self._sasl_pending = False

    # --- the one entry point ----------------------------------------------------------

    async def handle(self, item: Command | LineTooLong) -> Reply:
        if self.state in (State.UPDATE, State.CLOSED):
            return Reply(b"", close=True)
        try:
            if isinstance(item, LineTooLong):
                raise BadCommand(
                    f"line too long: at most {item.limit} octets per line including CRLF;"
                    " the line was ignored"
                )
            if self._sasl_pending:
                self._sasl_pending = False
                return await self._sasl_plain_response(item.line)
            return await self._dispatch(item)
        except Pop3Error as error:
            return await self._refuse(error)

    async def _refuse(self, error: Pop3Error) -> Reply:
        if error.counts_as_bad:
            self.bad_commands += 1
            if self.bad_commands >= self.settings.max_bad_commands:
                await self.close()
                return Reply(
                    err(
                        f"too many bad commands ({self.bad_commands}): closing the connection;"
                        " reconnect and check what the client sends"
                    ),
                    close=True,
                )
        if error.closes:
            await self.close()
        return Reply(error.reply(), close=error.closes)

    async def _dispatch(self, command: Command) -> Reply:
        name = command.name
        if name not in KNOWN_COMMANDS:
            shown = name[:20] if name.isprintable() and name.isascii() else "(not text)"
            raise BadCommand(f'unknown command "{shown}"; CAPA lists what this server does')
        if name not in ALLOWED[self.state]:
            raise BadCommand(self._wrong_state(name))
        if self._pending_user is not None and name != "PASS":
            self._pending_user = None  # RFC 1939 §7: PASS only right after USER
        handler = getattr(self, f"do_{name.lower()}")
        reply: Reply = await handler(command)
        return reply

    def _wrong_state(self, name: str) -> str:
        if self.state is State.AUTHORIZATION:
            return f"{name} needs a login first: USER and PASS, APOP or AUTH PLAIN"
        if name == "STLS":
            return "STLS is only allowed before login (RFC 2595 §4); reconnect to use it"
        return f"already logged in as {self.user}; {name} is only allowed before login"

    def _move(self, event: str) -> None:
        self.state = TRANSITIONS[(self.state, event)]

    # --- AUTHORIZATION ----------------------------------------------------------------

    def _check_tls_for_auth(self) -> None:
        if self.settings.require_tls_for_auth and not self.tls_active:
            raise Refused("TLS required: use STLS or POP3S", "AUTH")

    async def do_user(self, command: Command) -> Reply:
        if len(command.args) != 1:
            raise BadCommand("USER takes one mailbox address, like USER larry@beta.test")
        self._check_tls_for_auth()
        user = _check_user_name(command.args[0])
        self._pending_user = user
        return Reply(ok(f"send PASS for {user}"))

    async def do_pass(self, command: Command) -> Reply:
        user, self._pending_user = self._pending_user, None
        if user is None:
            raise BadCommand("send USER first, then PASS")
        # RFC 1939 §7: PASS has one argument, so spaces in it belong to the password.
        password = command.line[5:].decode("utf-8", "replace")
        if not self.backend.check_login(user, password):
            raise Refused(f"wrong user name or password for {user}", "AUTH")
        return await self._login(user)

    async def do_apop(self, command: Command) -> Reply:
        if len(command.args) != 2:
            raise BadCommand("APOP takes a user name and an MD5 digest: APOP name digest")
        self._check_tls_for_auth()
        user = _check_user_name(command.args[0])
        if not self.backend.check_apop(user, self.timestamp, command.args[1]):
            raise Refused(f"wrong user name or APOP digest for {user}", "AUTH")
        return await self._login(user)

    async def do_auth(self, command: Command) -> Reply:
        if not command.args:
            # The mechanism list of the pre-RFC 5034 "AUTH" with no argument.
            return Reply(multiline([b"PLAIN"], ok("SASL mechanisms follow")))
        mechanism = command.args[0].upper()
        if mechanism != "PLAIN":
            raise Refused(f"unsupported SASL mechanism {mechanism[:20]}; use AUTH PLAIN", "AUTH")
        if len(command.args) > 2:
            raise BadCommand("AUTH PLAIN takes at most one initial response")
        self._check_tls_for_auth()
        if len(command.args) == 2:
            # RFC 5034 §4: "=" is an empty initial response.
            return await self._sasl_plain_response(command.args[1].encode())
        self._sasl_pending = True
        return Reply(b"+ \r\n")  # RFC 5034 §4: an empty challenge

    async def _sasl_plain_response(self, line: bytes) -> Reply:
        line = line.strip()
        if line == b"*":
            raise Refused("AUTH cancelled by the client")  # RFC 5034 §4
        try:
            decoded = base64.b64decode(b"" if line == b"=" else line, validate=True)
        except (binascii.Error, ValueError):
            raise BadCommand("AUTH PLAIN response is not valid base64", "AUTH") from None
        # RFC 4616 §2: authzid NUL authcid NUL passwd
        parts = decoded.split(b"\0")
        if len(parts) != 3 or not parts[1]:
            raise BadCommand("AUTH PLAIN response must be authzid NUL user NUL password", "AUTH")
        authzid, authcid, password = (p.decode("utf-8", "replace") for p in parts)
        user = _check_user_name(authcid)
        if authzid and canonical_user(authzid) != user:
            raise Refused(f"{user} may not act as {authzid}", "AUTH")
        if not self.backend.check_login(user, password):
            raise Refused(f"wrong user name or password for {user}", "AUTH")
        return await self._login(user)

    async def _login(self, user: str) -> Reply:
        try:
            maildrop = await self.backend.open_maildrop(user)
        except MaildropInUse:
            # RFC 2449 §8.1.1: the maildrop is locked by another session.
            raise Refused(
                f"{user} is open in another POP3 session; end that one (QUIT) and retry",
                "IN-USE",
            ) from None
        self._maildrop = maildrop
        self._entries = maildrop.entries
        self.user = user
        self._move("login")
        count, octets = self._stat()
        return Reply(ok(f"{user} has {count} messages ({octets} octets)"))

    async def do_stls(self, command: Command) -> Reply:
        if self.tls_active:
            raise BadCommand("TLS is already active")
        if not self.tls_available:
            raise BadCommand("STLS is not available on this port; use POP3S for TLS")
        return Reply(ok("begin TLS negotiation"), start_tls=True)

    # --- both states ------------------------------------------------------------------

    async def do_capa(self, command: Command) -> Reply:
        caps = [b"TOP", b"UIDL", b"RESP-CODES", b"AUTH-RESP-CODE", b"PIPELINING"]
        if self.state is State.AUTHORIZATION:
            caps += [b"USER", b"SASL PLAIN"]
            if self.tls_available and not self.tls_active:
                caps.append(b"STLS")
        caps += [b"EXPIRE NEVER", f"IMPLEMENTATION {self.settings.implementation}".encode()]
        return Reply(multiline(caps, ok("capability list follows")))

    async def do_quit(self, command: Command) -> Reply:
        if self.state is State.AUTHORIZATION:
            self._move("QUIT")
            return Reply(ok(f"{self.settings.implementation} signing off"), close=True)
        self._move("QUIT")  # UPDATE: RFC 1939 §6, the only place deletions happen
        maildrop, self._maildrop = self._maildrop, None
        deleted = [self._entries[n - 1].entry_id for n in sorted(self._deleted)]
        try:
            if maildrop is not None:
                await maildrop.close(deleted=deleted, retrieved=list(self._retrieved))
        except Exception:
            self._move("updated")
            raise ServerFailure(
                "some deleted messages not removed: the sandbox could not write to its"
                " store; they are still in INBOX, delete them again later"
            ) from None
        self._move("updated")
        left = len(self._entries) - len(deleted)
        return Reply(
            ok(f"signing off ({len(deleted)} deleted, {left} left in the maildrop)"),
            close=True,
        )

    async def close(self) -> None:
        """End the session without UPDATE (connection dropped, timeout); idempotent."""
        maildrop, self._maildrop = self._maildrop, None
        if self.state is not State.CLOSED:
            self._move("dropped")
        if maildrop is not None:
            try:
                await maildrop.close(retrieved=list(self._retrieved))
            except Exception:  # the lock is released all the same; only journeys are lost
                log.exception("POP3: could not record the retrievals of %s", self.user)

    # --- TRANSACTION --------------------------------------------------------------------

    def _stat(self) -> tuple[int, int]:
        live = [e for n, e in enumerate(self._entries, 1) if n not in self._deleted]
        return len(live), sum(e.size for e in live)

    def _message(self, arg: str) -> tuple[int, MaildropEntry]:
        if not arg.isdigit() or not arg.isascii():
            raise BadCommand(f'"{arg[:20]}" is not a message number; numbers start at 1')
        number = int(arg)
        if not 1 <= number <= len(self._entries):
            raise Refused(
                f"no message {number}: the maildrop has {len(self._entries)} messages"
                " (LIST shows them)"
            )
        if number in self._deleted:
            raise Refused(f"message {number} already deleted; RSET undeletes it")
        return number, self._entries[number - 1]

    def _args(self, command: Command, least: int, most: int, usage: str) -> tuple[str, ...]:
        if not least <= len(command.args) <= most:
            raise BadCommand(f"usage: {usage}")
        return command.args

    async def do_stat(self, command: Command) -> Reply:
        self._args(command, 0, 0, "STAT")
        count, octets = self._stat()
        return Reply(ok(f"{count} {octets}"))

    async def do_list(self, command: Command) -> Reply:
        args = self._args(command, 0, 1, "LIST [message number]")
        if args:
            number, entry = self._message(args[0])
            return Reply(ok(f"{number} {entry.size}"))
        count, octets = self._stat()
        lines = [
            b"%d %d" % (n, e.size) for n, e in enumerate(self._entries, 1) if n not in self._deleted
        ]
        return Reply(multiline(lines, ok(f"{count} messages ({octets} octets)")))

    async def do_uidl(self, command: Command) -> Reply:
        args = self._args(command, 0, 1, "UIDL [message number]")
        if args:
            number, entry = self._message(args[0])
            return Reply(ok(f"{number} {_uidl(entry)}"))
        lines = [
            f"{n} {_uidl(e)}".encode()
            for n, e in enumerate(self._entries, 1)
            if n not in self._deleted
        ]
        return Reply(multiline(lines, ok("unique-id listing follows")))

    async def do_retr(self, command: Command) -> Reply:
        args = self._args(command, 1, 1, "RETR message number")
        number, entry = self._message(args[0])
        raw = await self._raw(number, entry)
        self._retrieved[entry.entry_id] = None
        # The size said here is the one LIST gave: CRLF endings, before dot-stuffing. When
        # it equals the stored length the message is already in wire form (no bare LF,
        # ending in CRLF): skip scanning it again.
        wire = raw if entry.size == len(raw) else to_wire(raw)
        return Reply(b"+OK %d octets\r\n" % entry.size + dot_stuff(wire) + b".\r\n")

    async def do_top(self, command: Command) -> Reply:
        args = self._args(command, 2, 2, "TOP message number, number of body lines")
        number, entry = self._message(args[0])
        if not args[1].isdigit() or not args[1].isascii():
            raise BadCommand(f'"{args[1][:20]}" is not a number of lines (0 or more)')
        raw = await self._raw(number, entry)
        return Reply(
            b"+OK top of message follows\r\n" + dot_stuff(top(raw, int(args[1]))) + b".\r\n"
        )

    async def do_dele(self, command: Command) -> Reply:
        args = self._args(command, 1, 1, "DELE message number")
        number, entry = self._message(args[0])
        self._deleted.add(number)
        self._cache.pop(entry.entry_id, None)
        return Reply(ok(f"message {number} deleted"))

    async def do_rset(self, command: Command) -> Reply:
        self._args(command, 0, 0, "RSET")
        self._deleted.clear()
        count, octets = self._stat()
        return Reply(ok(f"maildrop has {count} messages ({octets} octets)"))

    async def do_noop(self, command: Command) -> Reply:
        self._args(command, 0, 0, "NOOP")
        return Reply(ok())

    async def _raw(self, number: int, entry: MaildropEntry) -> bytes:
        """The raw message, read ahead in batches: clients fetch in order."""
        raw = self._cache.pop(entry.entry_id, None)
        if raw is not None:
            return raw
        batch: list[int] = []
        octets = 0
        for n in range(number, len(self._entries) + 1):
            if n in self._deleted:
                continue
            ahead = self._entries[n - 1]
            if batch and (len(batch) >= FETCH_BATCH or octets + ahead.size > FETCH_BATCH_BYTES):
                break
            batch.append(ahead.entry_id)
            octets += ahead.size
        assert self._maildrop is not None  # TRANSACTION always has one
        try:
            fetched = await self._maildrop.fetch(batch)
        except Exception:
            raise ServerFailure("the sandbox could not read its store; try again") from None
        self._cache = dict(fetched)
        raw = self._cache.pop(entry.entry_id, None)
        if raw is None:
            raise Refused(
                f"message {number} was removed by another client since login; QUIT and log"
                " in again to see the current maildrop"
            )
        return raw


def _uidl(entry: MaildropEntry) -> str:
    # RFC 1939 §7: 1-70 characters 0x21-0x7E, stable across sessions; UIDVALIDITY
    # and UID together never repeat (UIDVALIDITY is unique across every folder).
    return f"{entry.uidvalidity}.{entry.uid}"


def _check_user_name(name: str) -> str:
    user = canonical_user(name)
    if user != ALL_USER and ("@" not in user or user.startswith("@") or user.endswith("@")):
        raise Refused(
            f'"{name[:64]}" is not a mailbox: log in with an address like larry@beta.test,'
            f' or "{ALL_USER}" for every INBOX',
            "AUTH",
        )
    return user
