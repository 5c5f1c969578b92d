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

Most of a download needs no I/O: LIST, UIDL, STAT, DELE and a RETR of a message already
read ahead are answered from memory. ``handle_now`` gives those replies synchronously so
that the adapter can answer where the bytes arrive, without a pass through the event
loop; everything else (and every refusal) goes through ``handle``. The ``do_<name>``
methods of those commands are plain functions, and every handler raises its refusals
before it changes anything, so a command that ``handle_now`` gave up on is handled
afresh by ``handle``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import enum
import itertools
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from sandbox.pop3.backend import (
    ALL_USER,
    FETCH_BATCH,
    FETCH_BATCH_BYTES,
    JOURNAL_BATCH,
    Maildrop,
    MaildropEntry,
    MaildropInUse,
    Pop3Backend,
    apop_digest,
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
# TRANSACTION commands that ``handle_now`` may answer from memory (RETR and TOP only when
# the message was read ahead); each is a plain function on the session.
IMMEDIATE: Final = {
    "STAT": "do_stat",
    "LIST": "do_list",
    "UIDL": "do_uidl",
    "DELE": "do_dele",
    "RSET": "do_rset",
    "NOOP": "do_noop",
    "CAPA": "do_capa",
    "RETR": "retr_now",
    "TOP": "top_now",
}


@dataclass(frozen=True)
class Pop3Settings:
    """Every POP3 limit, explicit (DESIGN.md); the runtime builds this from the config."""

    # RFC 1939 §3: an autologout timer, if any, of at least 10 minutes.
    idle_timeout: float = 600.0
    max_line: int = DEFAULT_MAX_LINE
    max_bad_commands: int = 10
    max_connections: int = 1000  # per listener; more get -ERR [SYS/TEMP] and a close
    require_tls_for_auth: bool = False
    implementation: str = "mail-sandbox"
    # The ``all`` login with accounts configured (config [logins]): off refuses it; a
    # password (empty: refused) lets it in. Neither set: the backend decides, as before.
    all_login_off: bool = False
    all_password: str | None = None


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
        self._retrieved: set[int] = set()  # entry ids, for the journeys
        self._unjournaled: list[int] = []  # retrieved, not yet handed to note_retrieved
        self._cache: dict[int, bytes] = {}  # read-ahead of raw messages by entry id
        self._ahead: asyncio.Future[Mapping[int, bytes]] | None = None  # the next batch
        self._ahead_from = 1  # the message number the next read-ahead starts at

    def greeting(self) -> bytes:
        return ok(f"{self.settings.implementation} POP3 ready {self.timestamp}")

    def tls_started(self) -> None:
        """RFC 2595 §4: after the handshake, forget anything learnt before it."""
        self.tls_active = True
        self._pending_user = None
        self._sasl_pending = False

    # --- the one entry point ----------------------------------------------------------

    def handle_now(self, item: Command | LineTooLong) -> Reply | None:
        """The reply to ``item`` when it can be made from memory at once, else None and
        nothing changed: then ``await handle(item)`` answers it (refusals included)."""
        if (
            self.state is not State.TRANSACTION
            or self._sasl_pending
            or not isinstance(item, Command)
            or item.name not in IMMEDIATE
        ):
            return None
        handler: Callable[[Command], Reply | None] = getattr(self, IMMEDIATE[item.name])
        try:
            return handler(item)
        except Pop3Error:
            return None  # the budget, closing: all in handle(), which meets the same error

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
        handler: Callable[[Command], Reply | Awaitable[Reply]]
        handler = getattr(self, f"do_{name.lower()}")
        reply = handler(command)
        return reply if isinstance(reply, Reply) else await reply

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
        if not self._check_password(user, password):
            raise Refused(f"wrong user name or password for {user}", "AUTH")
        return await self._login(user)

    async def do_apop(self, command: Command) -> Reply:
        if len(command.args) != 2:
            raise BadCommand("APOP takes a user name and an MD5 digest: APOP name digest")
        self._check_tls_for_auth()
        user = _check_user_name(command.args[0])
        allowed = self._all_login(user)
        if allowed is None:
            allowed = self.backend.check_apop(user, self.timestamp, command.args[1])
        elif allowed:
            expected = apop_digest(self.timestamp, self.settings.all_password or "")
            allowed = secrets.compare_digest(expected, command.args[1].lower())
        if not allowed:
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
        if not self._check_password(user, password):
            raise Refused(f"wrong user name or password for {user}", "AUTH")
        return await self._login(user)

    def _all_login(self, user: str) -> bool | None:
        """For ``all`` with accounts configured: False when it has no password to give,
        True when its password is to be checked; None for every other case (the backend's)."""
        if user != ALL_USER:
            return None
        if self.settings.all_login_off:
            raise Refused(
                f'the "{ALL_USER}" login is off while accounts are configured'
                " (logins.allow_all enables it)",
                "AUTH",
            )
        if self.settings.all_password is None:
            return None
        return bool(self.settings.all_password)

    def _check_password(self, user: str, password: str) -> bool:
        allowed = self._all_login(user)
        if allowed is None:
            return self.backend.check_login(user, password)
        expected = (self.settings.all_password or "").encode()
        return allowed and secrets.compare_digest(expected, password.encode())

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

    def do_capa(self, command: Command) -> Reply:
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
                await maildrop.close(deleted=deleted, retrieved=self._unjournaled)
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
        self._stop_read_ahead()
        maildrop, self._maildrop = self._maildrop, None
        if self.state is not State.CLOSED:
            self._move("dropped")
        if maildrop is not None:
            try:
                await maildrop.close(retrieved=self._unjournaled)
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

    def do_stat(self, command: Command) -> Reply:
        self._args(command, 0, 0, "STAT")
        count, octets = self._stat()
        return Reply(ok(f"{count} {octets}"))

    def do_list(self, command: Command) -> Reply:
        args = self._args(command, 0, 1, "LIST [message number]")
        if args:
            number, entry = self._message(args[0])
            return Reply(ok(f"{number} {entry.size}"))
        count, octets = self._stat()
        lines = [
            b"%d %d" % (n, e.size) for n, e in enumerate(self._entries, 1) if n not in self._deleted
        ]
        return Reply(multiline(lines, ok(f"{count} messages ({octets} octets)")))

    def do_uidl(self, command: Command) -> Reply:
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
        number, entry = self._retr_target(command)
        return self._retr_reply(entry, await self._raw(number, entry))

    def retr_now(self, command: Command) -> Reply | None:
        _, entry = self._retr_target(command)
        raw = self._cached(entry)
        return None if raw is None else self._retr_reply(entry, raw)

    def _retr_target(self, command: Command) -> tuple[int, MaildropEntry]:
        args = self._args(command, 1, 1, "RETR message number")
        return self._message(args[0])

    def _retr_reply(self, entry: MaildropEntry, raw: bytes) -> Reply:
        if entry.entry_id not in self._retrieved:
            self._retrieved.add(entry.entry_id)
            self._unjournaled.append(entry.entry_id)
            if len(self._unjournaled) >= JOURNAL_BATCH and self._maildrop is not None:
                self._maildrop.note_retrieved(self._unjournaled)
                self._unjournaled = []
        # The size said here is the one LIST gave: CRLF endings, before dot-stuffing. When
        # it equals the stored length the message is already in wire form (no bare LF,
        # ending in CRLF): skip scanning it again.
        wire = raw if entry.size == len(raw) else to_wire(raw)
        return Reply(b"".join((b"+OK %d octets\r\n" % entry.size, dot_stuff(wire), b".\r\n")))

    async def do_top(self, command: Command) -> Reply:
        number, entry, lines = self._top_target(command)
        return self._top_reply(await self._raw(number, entry), lines)

    def top_now(self, command: Command) -> Reply | None:
        _, entry, lines = self._top_target(command)
        raw = self._cached(entry)
        return None if raw is None else self._top_reply(raw, lines)

    def _top_target(self, command: Command) -> tuple[int, MaildropEntry, int]:
        args = self._args(command, 2, 2, "TOP message number, number of body lines")
        number, entry = self._message(args[0])
        if not args[1].isdigit() or not args[1].isascii():
            raise BadCommand(f'"{args[1][:20]}" is not a number of lines (0 or more)')
        return number, entry, int(args[1])

    def _top_reply(self, raw: bytes, lines: int) -> Reply:
        return Reply(b"+OK top of message follows\r\n" + dot_stuff(top(raw, lines)) + b".\r\n")

    def do_dele(self, command: Command) -> Reply:
        args = self._args(command, 1, 1, "DELE message number")
        number, entry = self._message(args[0])
        self._deleted.add(number)
        self._cache.pop(entry.entry_id, None)
        return Reply(ok(f"message {number} deleted"))

    def do_rset(self, command: Command) -> Reply:
        self._args(command, 0, 0, "RSET")
        self._deleted.clear()
        count, octets = self._stat()
        return Reply(ok(f"maildrop has {count} messages ({octets} octets)"))

    def do_noop(self, command: Command) -> Reply:
        self._args(command, 0, 0, "NOOP")
        return Reply(ok())

    def _cached(self, entry: MaildropEntry) -> bytes | None:
        """The raw message if it was read ahead; keeps the read-ahead going."""
        raw = self._cache.pop(entry.entry_id, None)
        if raw is not None and len(self._cache) <= FETCH_BATCH // 2 and self._ahead is None:
            self._read_ahead()
        return raw

    async def _raw(self, number: int, entry: MaildropEntry) -> bytes:
        """The raw message, read ahead in batches: clients fetch in order."""
        raw = self._cached(entry)
        if raw is None and self._ahead is not None:
            with contextlib.suppress(Exception):  # the fetch below says what went wrong
                self._cache.update(await self._ahead)
            raw = self._cached(entry)
        if raw is not None:
            return raw
        self._stop_read_ahead()  # out of order: read from here on instead
        batch, self._ahead_from = self._batch(number)
        assert self._maildrop is not None  # TRANSACTION always has one
        try:
            fetched = await self._maildrop.fetch(batch)
        except Exception:
            raise ServerFailure("the sandbox could not read its store; try again") from None
        self._cache = dict(fetched)
        raw = self._cached(entry)
        if raw is None:
            raise Refused(
                f"message {number} was removed by another client since login; QUIT and log"
                " in again to see the current maildrop"
            )
        return raw

    def _batch(self, start: int) -> tuple[list[int], int]:
        """Entry ids of the messages not deleted from ``start`` on, as many as one read
        takes; and the number after the last one."""
        batch: list[int] = []
        octets = 0
        number = start
        while number <= len(self._entries):
            if number not in self._deleted:
                ahead = self._entries[number - 1]
                if batch and (len(batch) >= FETCH_BATCH or octets + ahead.size > FETCH_BATCH_BYTES):
                    break
                batch.append(ahead.entry_id)
                octets += ahead.size
            number += 1
        return batch, number

    def _read_ahead(self) -> None:
        """Start reading the next batch while the client still downloads this one, so
        that a download in order never waits for the store (and RETR needs no I/O)."""
        if self._maildrop is None or self._ahead_from > len(self._entries):
            return
        batch, self._ahead_from = self._batch(self._ahead_from)
        if not batch:
            return
        ahead = asyncio.ensure_future(self._maildrop.fetch(batch))
        self._ahead = ahead

        def done(future: asyncio.Future[Mapping[int, bytes]]) -> None:
            if self._ahead is future:
                self._ahead = None
                if not future.cancelled() and future.exception() is None:
                    self._cache.update(future.result())
            elif not future.cancelled():
                future.exception()  # retrieved: a failure shows at the next read instead

        ahead.add_done_callback(done)

    def _stop_read_ahead(self) -> None:
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead.cancel()


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
