"""One IMAP connection's protocol state and its commands, over the backend (RFC 3501).

Theory of operation: a session is in one of four states (§3). Not authenticated →
LOGIN/AUTHENTICATE → authenticated → SELECT/EXAMINE → selected; CLOSE, UNSELECT or a
failed SELECT go back to authenticated, LOGOUT (or a BYE) ends in logout. ``ALLOWED``
below is the one table of which commands each state accepts: a command outside it is
refused with BAD before any ``do_<name>`` method runs. Commands report failure by
raising an ``ImapError`` that knows its own status (NO, BAD, BYE) and renders itself
with the tag.

While a folder is selected the session watches it through the backend. Changes made by
other sessions, SMTP deliveries or the TUI arrive as bus events and are queued; they are
told to the client at the points RFC 3501 §5.2/§7.4.1 allow — after any command, except
that EXPUNGE is never sent during FETCH, STORE or SEARCH (sequence numbers must not shift
under a client that is using them) — and at once while the client IDLEs (RFC 2177).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import email.utils
import quopri
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any, Literal

from sandbox.events import (
    EntriesCopied,
    EntriesExpunged,
    Event,
    FlagsChanged,
    MessagesCleared,
    MessagesPruned,
    MessageStored,
    StoreResynced,
)
from sandbox.imap import response as R
from sandbox.imap.backend import Entry, Folder, FolderKey, ImapBackend, Meta
from sandbox.imap.message import (
    Part,
    SectionMissing,
    decode_words,
    field_value,
    header_fields,
    section_bytes,
)
from sandbox.imap.parser import (
    Append,
    Authenticate,
    Command,
    CopyCommand,
    Enable,
    Fetch,
    FetchAttr,
    Id,
    ListCommand,
    Login,
    MailboxCommand,
    Rename,
    Search,
    SearchKey,
    SeqRange,
    SequenceSet,
    Status,
    Store,
    UidExpunge,
)
from sandbox.store import INBOX, SENT, TRASH, normalize_address

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
DELIMITER = "/"
ALL_USER = "all"
_PROTECTED = frozenset({INBOX, SENT, TRASH})  # ingest delivers into these; never removed
_FETCH_CHUNK = 250
_READ_AHEAD = 128  # messages read along with a one-at-a-time body FETCH (mbsync)


@dataclass(frozen=True)
class ImapSettings:
    """Limits and switches for the IMAP servers (one place, built from the config)."""

    hostname: str = "imap.localhost"
    max_line_length: int = 64 * 1024
    max_literal_size: int = 32 * 1024 * 1024
    max_command_size: int = 64 * 1024 * 1024  # a whole command, its literals included
    max_command_size_before_login: int = 8 * 1024
    idle_timeout: float = 1800.0  # RFC 3501 §5.4: at least 30 minutes
    max_bad_commands: int = 20
    max_connections: int = 1000  # per listener; more get * BYE [UNAVAILABLE] and a close
    max_nesting: int = 32  # nested search keys; deeper gets a tagged BAD
    require_tls_for_auth: bool = False  # LOGINDISABLED until STARTTLS (RFC 3501 §6.2.3)
    accounts: tuple[tuple[str, str], ...] = ()  # (address, password)
    # With accounts, `all` logs in only when allowed, and then with all_password
    # (empty: refused). Without accounts it opens with any password.
    allow_all: bool = False
    all_password: str = ""

    @classmethod
    def from_config(cls, config: Any, **overrides: Any) -> ImapSettings:
        """Accounts and limits from ``sandbox.config.Config`` (imap.* keys when present)."""
        imap = getattr(config, "imap", None)
        values: dict[str, Any] = {
            "accounts": tuple((a.address.lower(), a.password) for a in config.accounts),
        }
        for name in (
            "hostname",
            "max_line_length",
            "max_literal_size",
            "max_command_size",
            "max_command_size_before_login",
            "idle_timeout",
            "max_bad_commands",
            "max_connections",
            "max_nesting",
            "require_tls_for_auth",
        ):
            if hasattr(imap, name):
                values[name] = getattr(imap, name)
        logins = getattr(config, "logins", None)
        for name in ("allow_all", "all_password"):
            if hasattr(logins, name):
                values[name] = getattr(logins, name)
        values.update(overrides)
        return cls(**values)


# --- errors -------------------------------------------------------------------------


class ImapError(Exception):
    """A command's failure, carrying its own reply (pymap's ResponseError)."""

    status: Literal["NO", "BAD", "BYE"] = "NO"

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code

    def render(self, tag: str) -> bytes:
        code = f"[{self.code}] " if self.code else ""
        if self.status == "BYE":
            return f"* BYE {code}{self.text}\r\n".encode()
        return f"{tag} {self.status} {code}{self.text}\r\n".encode()


class No(ImapError):
    status = "NO"


class Bad(ImapError):
    status = "BAD"


class Bye(ImapError):
    """Ends the connection after the reply."""

    status = "BYE"


# --- the state table ---------------------------------------------------------------


class State(Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


_ANY = frozenset({"CAPABILITY", "NOOP", "LOGOUT", "ID"})
_NOT_AUTH = frozenset({"STARTTLS", "AUTHENTICATE", "LOGIN"})
_AUTH = frozenset(
    {
        "SELECT",
        "EXAMINE",
        "CREATE",
        "DELETE",
        "RENAME",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "LIST",
        "LSUB",
        "STATUS",
        "APPEND",
        "NAMESPACE",
        "ENABLE",
        "IDLE",
    }
)
_SELECTED = frozenset(
    {"CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE"}
)
ALLOWED: dict[State, frozenset[str]] = {
    State.NOT_AUTHENTICATED: _ANY | _NOT_AUTH,
    State.AUTHENTICATED: _ANY | _AUTH,
    State.SELECTED: _ANY | _AUTH | _SELECTED,
    State.LOGOUT: frozenset(),
}


def _refusal(state: State, name: str) -> Bad:
    """Why a command is not allowed here, in words a developer can act on."""
    if name in _NOT_AUTH:
        return Bad(f"{name} is not allowed: already authenticated")
    if state is State.NOT_AUTHENTICATED:
        return Bad(f"{name} needs a login first (LOGIN or AUTHENTICATE)")
    if name in _SELECTED:
        return Bad(f"{name} needs a selected mailbox (SELECT or EXAMINE first)")
    return Bad(f"{name} is not allowed in the {state.value} state")


# --- the selected folder -------------------------------------------------------------


@dataclass
class Selected:
    """The folder as this session has told the client about it (sequence numbers!)."""

    folder: Folder
    readonly: bool
    entries: list[Entry]
    uids: list[int] = field(default_factory=list)
    recent: set[int] = field(default_factory=set)
    new_pending: bool = False
    resync_pending: bool = False
    flags_pending: dict[int, tuple[str, ...]] = field(default_factory=dict)
    expunge_pending: set[int] = field(default_factory=set)
    next_body_index: int = -1  # where the last body FETCH ended, to spot a sequential reader

    def __post_init__(self) -> None:
        self.reindex()

    def reindex(self) -> None:
        self.uids = [e.uid for e in self.entries]

    def index_of(self, uid: int) -> int | None:
        i = bisect.bisect_left(self.uids, uid)
        return i if i < len(self.uids) and self.uids[i] == uid else None


Send = Callable[[bytes], Awaitable[None]]


class Session:
    """See the module docstring. ``send`` writes bytes to the client (and drains)."""

    def __init__(
        self,
        backend: ImapBackend,
        settings: ImapSettings,
        send: Send,
        *,
        tls: bool = False,
        starttls_available: bool = False,
    ) -> None:
        self.backend = backend
        self.settings = settings
        self._send = send
        self._out: list[bytes] = []
        self._out_size = 0
        self.tls = tls
        self.starttls_available = starttls_available
        self.state = State.NOT_AUTHENTICATED
        self.user: str | None = None
        self.selected: Selected | None = None
        self.origin = f"imap:{id(self):x}"
        # Set when the next input is a raw line (AUTHENTICATE response, IDLE's DONE).
        self.wants_raw_line = False
        self.idling: str | None = None  # the IDLE command's tag
        self._auth_tag: str | None = None
        self.starttls_requested = False
        self.bad_commands = 0
        self.wakeup = asyncio.Event()  # set when changes arrive for the selected folder
        self._accounts = dict(settings.accounts)

    # --- output ---------------------------------------------------------------------

    async def emit(self, data: bytes) -> None:
        self._out.append(data)
        self._out_size += len(data)
        if self._out_size >= 256 * 1024:
            await self.flush()

    async def flush(self) -> None:
        if self._out:
            data = b"".join(self._out)
            self._out.clear()
            self._out_size = 0
            await self._send(data)

    async def greet(self) -> None:
        await self.emit(
            f"* OK [CAPABILITY {self.capabilities()}] {self.settings.hostname}"
            " mail-sandbox IMAP4rev1 ready\r\n".encode()
        )
        await self.flush()

    def capabilities(self) -> str:
        caps = ["IMAP4rev1", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE", "NAMESPACE"]
        if self.state is State.NOT_AUTHENTICATED:
            if self.starttls_available and not self.tls:
                caps.append("STARTTLS")
            if self.settings.require_tls_for_auth and not self.tls:
                caps.append("LOGINDISABLED")
            else:
                caps.append("AUTH=PLAIN")
        caps += ["UIDPLUS", "MOVE", "UNSELECT", "CHILDREN", "SPECIAL-USE"]
        return " ".join(caps)

    # --- dispatch -------------------------------------------------------------------

    async def execute(self, command: Command) -> None:
        """Run one command; ImapErrors become their reply, anything else propagates."""
        try:
            if command.name not in ALLOWED[self.state]:
                raise _refusal(self.state, command.name)
            handler: Callable[[Any], Awaitable[None]] = getattr(self, "do_" + command.name.lower())
            await handler(command)
            self.bad_commands = 0
        except ImapError as exc:
            if isinstance(exc, Bad):
                self.bad_commands += 1
            if isinstance(exc, Bye):
                self.state = State.LOGOUT
            await self.emit(exc.render(command.tag))
        # No flush here: the server flushes once the pipeline of commands is drained.

    async def parse_error(self, reply: bytes) -> None:
        """A command the parser refused: its BAD (or NO) reply, and one bad command more."""
        self.bad_commands += 1
        await self.emit(reply)

    @property
    def too_many_bad_commands(self) -> bool:
        return self.bad_commands >= self.settings.max_bad_commands

    def tls_started(self) -> None:
        """The STARTTLS handshake the session asked for is done (RFC 3501 §6.2.1)."""
        self.starttls_requested = False
        self.tls = True

    async def raw_line(self, line: bytes) -> None:
        """The line a continuation asked for: the SASL response or IDLE's DONE."""
        self.wants_raw_line = False
        tag = self.idling or self._auth_tag or "*"
        try:
            if self.idling is not None:
                tag, self.idling = self.idling, None
                if line.strip().upper() != b"DONE":
                    raise Bad("Expected DONE to end IDLE")
                await self._ok(tag, "IDLE terminated", expunge_ok=True)
            elif self._auth_tag is not None:
                tag, self._auth_tag = self._auth_tag, None
                await self._authenticate_plain(tag, line, continuation=True)
        except ImapError as exc:
            if isinstance(exc, Bad):
                self.bad_commands += 1
            await self.emit(exc.render(tag))

    async def _ok(
        self, tag: str, text: str, code: str | None = None, *, expunge_ok: bool = True
    ) -> None:
        await self.sync(expunge_ok=expunge_ok)
        code_text = f"[{code}] " if code else ""
        await self.emit(f"{tag} OK {code_text}{text}\r\n".encode())

    # --- any state ------------------------------------------------------------------

    async def do_capability(self, cmd: Command) -> None:
        await self.emit(f"* CAPABILITY {self.capabilities()}\r\n".encode())
        await self._ok(cmd.tag, "CAPABILITY completed")

    async def do_noop(self, cmd: Command) -> None:
        await self._ok(cmd.tag, "NOOP completed")

    async def do_logout(self, cmd: Command) -> None:
        await self._leave_folder()
        self.state = State.LOGOUT
        await self.emit(b"* BYE Logging out\r\n")
        await self.emit(f"{cmd.tag} OK LOGOUT completed\r\n".encode())

    async def do_id(self, cmd: Id) -> None:
        # RFC 2971: the server says who it is, whatever the client sent.
        await self.emit(b'* ID ("name" "mail-sandbox" "vendor" "mail-sandbox")\r\n')
        await self._ok(cmd.tag, "ID completed")

    # --- not authenticated -------------------------------------------------------------

    async def do_starttls(self, cmd: Command) -> None:
        if self.tls:
            raise Bad("TLS is already active")
        if not self.starttls_available:
            raise Bad("STARTTLS is not available on this listener")
        await self.emit(f"{cmd.tag} OK Begin TLS negotiation now\r\n".encode())
        self.starttls_requested = True  # the server upgrades after flushing this reply

    async def do_login(self, cmd: Login) -> None:
        self._check_privacy()
        await self._log_in(cmd.tag, cmd.user, cmd.password)

    async def do_authenticate(self, cmd: Authenticate) -> None:
        self._check_privacy()
        if cmd.mechanism != "PLAIN":
            raise No(f"Unsupported mechanism {cmd.mechanism}; use PLAIN", "CANNOT")
        if cmd.initial is not None:
            await self._authenticate_plain(cmd.tag, cmd.initial, continuation=False)
            return
        # RFC 3501 §6.2.2: an empty challenge, then the client's response line.
        await self.emit(b"+ \r\n")
        self._auth_tag = cmd.tag
        self.wants_raw_line = True

    def _check_privacy(self) -> None:
        if self.settings.require_tls_for_auth and not self.tls:
            raise No("Log in only after STARTTLS", "PRIVACYREQUIRED")

    async def _authenticate_plain(self, tag: str, data: bytes, *, continuation: bool) -> None:
        if continuation and data.strip() == b"*":
            raise Bad("AUTHENTICATE cancelled")
        try:
            decoded = base64.b64decode(data.strip(), validate=True) if data.strip() else b""
        except binascii.Error:
            raise Bad("The SASL response is not base64") from None
        pieces = decoded.split(b"\0")
        if len(pieces) != 3:
            raise Bad("PLAIN wants authzid NUL authcid NUL password")
        authzid, authcid, password = (p.decode("utf-8", "replace") for p in pieces)
        if authzid and authzid.lower() != authcid.lower():
            raise No("Acting as another user is not supported", "AUTHORIZATIONFAILED")
        await self._log_in(tag, authcid, password)

    async def _log_in(self, tag: str, user: str, password: str) -> None:
        name = user.strip().lower()
        if name == ALL_USER:
            if self._accounts and not self.settings.allow_all:
                raise No(
                    "The all login is off while accounts are configured"
                    " (logins.allow_all enables it)",
                    "AUTHENTICATIONFAILED",
                )
            if self._accounts and not (
                self.settings.all_password
                and secrets.compare_digest(self.settings.all_password.encode(), password.encode())
            ):
                raise No("Invalid credentials", "AUTHENTICATIONFAILED")
        elif "@" not in name:
            raise No(
                "Log in with a mailbox address (larry@beta.test) or all", "AUTHENTICATIONFAILED"
            )
        else:
            name = normalize_address(name)
            expected = self._accounts.get(name)
            if self._accounts and (
                expected is None or not secrets.compare_digest(expected, password)
            ):
                raise No("Invalid credentials", "AUTHENTICATIONFAILED")
            await self.backend.ensure_mailbox(name)
        self.user = name
        self.state = State.AUTHENTICATED
        await self._ok(tag, "Logged in", f"CAPABILITY {self.capabilities()}")

    # --- names ----------------------------------------------------------------------

    @property
    def is_all(self) -> bool:
        return self.user == ALL_USER

    def imap_name(self, folder: Folder) -> str:
        """``all`` sees every mailbox as a top-level node: ``larry@beta.test/INBOX``."""
        return f"{folder.address}{DELIMITER}{folder.name}" if self.is_all else folder.name

    def resolve(self, name: str) -> FolderKey | None:
        assert self.user is not None
        name = name.rstrip(DELIMITER) if name != DELIMITER else name
        if not self.is_all:
            return (self.user, name) if name else None
        address, slash, rest = name.partition(DELIMITER)
        if not slash or not rest or "@" not in address:
            return None
        if rest.upper() == INBOX:
            rest = INBOX
        elif rest.upper().startswith(INBOX + DELIMITER):
            rest = INBOX + rest[len(INBOX) :]
        return (normalize_address(address), rest)

    async def _folder(self, name: str, code: str = "NONEXISTENT") -> Folder:
        key = self.resolve(name)
        folder = await self.backend.folder(*key) if key else None
        if folder is None:
            raise No(f"No such mailbox: {name}", code)
        return folder

    # --- authenticated ----------------------------------------------------------------

    async def do_select(self, cmd: MailboxCommand) -> None:
        await self._leave_folder()
        self.state = State.AUTHENTICATED  # §6.3.1: a failed SELECT leaves no folder selected
        folder = await self._folder(cmd.mailbox)
        readonly = cmd.name == "EXAMINE"
        sel = Selected(folder, readonly, [])
        self.selected = sel
        self.backend.watch(folder.key, self._on_event)  # before loading: nothing slips by
        snap = await self.backend.snapshot(folder.id)  # shared, rebuilt only after changes
        sel.entries = list(snap.entries)
        sel.uids = list(snap.uids)
        seen = self.backend.recent_seen.get(folder.id, 0)
        newer = sel.uids[bisect.bisect_right(sel.uids, seen) :]
        if readonly:
            sel.recent = set(newer)
        else:
            sel.recent = self.backend.claim_recent(folder.id, newer)
        # new_pending stays as the watch left it: a delivery that raced the snapshot is
        # picked up by the sync before the tagged OK (an extra query only when one came).
        self.state = State.SELECTED
        all_flags = " ".join((*SYSTEM_FLAGS, *snap.keywords))
        await self.emit(f"* FLAGS ({all_flags})\r\n".encode())
        permanent = "" if readonly else " ".join((*SYSTEM_FLAGS, "\\*"))
        await self.emit(f"* OK [PERMANENTFLAGS ({permanent})] Flags permitted\r\n".encode())
        await self.emit(f"* {len(sel.entries)} EXISTS\r\n* {len(sel.recent)} RECENT\r\n".encode())
        if snap.first_unseen is not None:
            await self.emit(f"* OK [UNSEEN {snap.first_unseen + 1}] First unseen\r\n".encode())
        uidnext = max(folder.uidnext, sel.uids[-1] + 1 if sel.uids else 1)
        await self.emit(
            f"* OK [UIDVALIDITY {folder.uidvalidity}] UIDs valid\r\n"
            f"* OK [UIDNEXT {uidnext}] Predicted next UID\r\n".encode()
        )
        mode = "READ-ONLY" if readonly else "READ-WRITE"
        await self._ok(cmd.tag, f"{cmd.name} completed", mode)

    do_examine = do_select

    async def do_create(self, cmd: MailboxCommand) -> None:
        key = self.resolve(cmd.mailbox)
        if key is None:
            raise No(f"Cannot create {cmd.mailbox!r} here", "CANNOT")
        if key[1] == INBOX:
            raise No("INBOX always exists", "ALREADYEXISTS")
        if not await self.backend.create_folder(*key):
            raise No(f"{cmd.mailbox} already exists", "ALREADYEXISTS")
        await self._ok(cmd.tag, "CREATE completed")

    async def do_delete(self, cmd: MailboxCommand) -> None:
        folder = await self._folder(cmd.mailbox)
        if folder.name in _PROTECTED:
            raise No(f"{folder.name} cannot be deleted; deliveries go there", "CANNOT")
        if self.selected and self.selected.folder.id == folder.id:
            await self._leave_folder()
            self.state = State.AUTHENTICATED
        await self.backend.delete_folder(folder, self.origin)
        await self._ok(cmd.tag, "DELETE completed")

    async def do_rename(self, cmd: Rename) -> None:
        folder = await self._folder(cmd.old)
        key = self.resolve(cmd.new)
        if key is None or key[0] != folder.address:
            raise No("Folders can only be renamed within one mailbox", "CANNOT")
        if folder.name in (SENT, TRASH) or key[1] == INBOX:
            raise No(f"{folder.name} cannot be renamed", "CANNOT")
        if not await self.backend.rename_folder(folder, key[1], self.origin):
            raise No(f"{cmd.new} already exists", "ALREADYEXISTS")
        await self._ok(cmd.tag, "RENAME completed")

    async def do_subscribe(self, cmd: MailboxCommand) -> None:
        folder = await self._folder(cmd.mailbox)
        await self.backend.set_subscribed(folder, cmd.name == "SUBSCRIBE")
        await self._ok(cmd.tag, f"{cmd.name} completed")

    do_unsubscribe = do_subscribe

    async def do_list(self, cmd: ListCommand) -> None:
        lsub = cmd.name == "LSUB"
        if not cmd.pattern and not lsub:
            # §6.3.8: an empty pattern asks for the delimiter and the root.
            await self.emit(f'* LIST (\\Noselect) "{DELIMITER}" ""\r\n'.encode())
            await self._ok(cmd.tag, "LIST completed")
            return
        folders = await self.backend.folders(None if self.is_all else self.user)
        names: dict[str, Folder | None] = {self.imap_name(f): f for f in folders}
        for name in list(names):
            parts = name.split(DELIMITER)
            for depth in range(1, len(parts)):
                names.setdefault(DELIMITER.join(parts[:depth]), None)
        matcher = _pattern(cmd.reference + cmd.pattern)
        ordered = sorted(names)
        for name in ordered:
            folder = names[name]
            if not matcher(name) or (lsub and (folder is None or not folder.subscribed)):
                continue
            prefix = name + DELIMITER
            i = bisect.bisect_right(ordered, name)
            has_children = i < len(ordered) and ordered[i].startswith(prefix)
            attrs = ["\\HasChildren" if has_children else "\\HasNoChildren"]
            if folder is None:
                attrs.insert(0, "\\Noselect")
            elif folder.special_use:
                attrs.append(folder.special_use)
            line = f'* {cmd.name} ({" ".join(attrs)}) "{DELIMITER}" '.encode()
            await self.emit(line + R.mailbox(name) + b"\r\n")
        await self._ok(cmd.tag, f"{cmd.name} completed")

    do_lsub = do_list

    async def do_status(self, cmd: Status) -> None:
        folder = await self._folder(cmd.mailbox)
        recent_after = self.backend.recent_seen.get(folder.id, 0)
        messages, unseen, recent = await self.backend.counts(folder.id, recent_after)
        values = {
            "MESSAGES": messages,
            "RECENT": recent,
            "UIDNEXT": folder.uidnext,
            "UIDVALIDITY": folder.uidvalidity,
            "UNSEEN": unseen,
        }
        items = " ".join(f"{item} {values[item]}" for item in cmd.items)
        await self.emit(b"* STATUS " + R.mailbox(cmd.mailbox) + f" ({items})\r\n".encode())
        await self._ok(cmd.tag, "STATUS completed")

    async def do_append(self, cmd: Append) -> None:
        key = self.resolve(cmd.mailbox)
        folder = await self.backend.folder(*key) if key else None
        if folder is None:
            # §6.3.11: TRYCREATE tells the client that CREATE would make this work.
            raise No(f"No such mailbox: {cmd.mailbox}", "TRYCREATE")
        if "\\*" in cmd.flags:
            raise Bad("\\* is not a flag")
        flags = tuple(f for f in cmd.flags if f.upper() != "\\RECENT")
        when = cmd.date.timestamp() if cmd.date else time.time()
        assert self.user is not None
        uid = await self.backend.append(folder, cmd.message, flags, when, self.user)
        await self._ok(cmd.tag, "APPEND completed", f"APPENDUID {folder.uidvalidity} {uid}")

    async def do_namespace(self, cmd: Command) -> None:
        await self.emit(f'* NAMESPACE (("" "{DELIMITER}")) NIL NIL\r\n'.encode())
        await self._ok(cmd.tag, "NAMESPACE completed")

    async def do_enable(self, cmd: Enable) -> None:
        # RFC 5161: only extensions the server implements get enabled; none need it yet.
        await self.emit(b"* ENABLED\r\n")
        await self._ok(cmd.tag, "ENABLE completed")

    async def do_idle(self, cmd: Command) -> None:
        await self.sync(expunge_ok=True)
        await self.emit(b"+ idling\r\n")
        self.idling = cmd.tag
        self.wants_raw_line = True

    # --- selected -------------------------------------------------------------------

    def _sel(self) -> Selected:
        assert self.selected is not None
        return self.selected

    async def do_check(self, cmd: Command) -> None:
        await self._ok(cmd.tag, "CHECK completed")

    async def do_close(self, cmd: Command) -> None:
        sel = self._sel()
        if not sel.readonly:
            # §6.4.2: CLOSE expunges without untagged EXPUNGE responses.
            doomed = [e.entry_id for e in sel.entries if _has(e.flags, "\\Deleted")]
            if doomed:
                await self.backend.expunge(sel.folder, doomed, self.origin)
        await self._leave_folder()
        self.state = State.AUTHENTICATED
        await self.emit(f"{cmd.tag} OK CLOSE completed\r\n".encode())

    async def do_unselect(self, cmd: Command) -> None:
        await self._leave_folder()
        self.state = State.AUTHENTICATED
        await self.emit(f"{cmd.tag} OK UNSELECT completed\r\n".encode())

    async def do_expunge(self, cmd: Command | UidExpunge) -> None:
        sel = self._sel()
        if sel.readonly:
            raise No("The mailbox is read-only (EXAMINE)", "READ-ONLY")
        chosen: set[int] | None = None
        if isinstance(cmd, UidExpunge):
            chosen = {sel.uids[i] for i in self._indexes(cmd.seqset, uid=True)}
        doomed = [
            e.entry_id
            for e in sel.entries
            if _has(e.flags, "\\Deleted") and (chosen is None or e.uid in chosen)
        ]
        gone = await self.backend.expunge(sel.folder, doomed, self.origin) if doomed else []
        sel.expunge_pending.update(uid for _, uid in gone)
        await self._ok(cmd.tag, "EXPUNGE completed")

    async def do_search(self, cmd: Search) -> None:
        if cmd.charset not in (None, "US-ASCII", "UTF-8"):
            raise No(f"Charset {cmd.charset} is not supported", "BADCHARSET (US-ASCII UTF-8)")
        sel = self._sel()
        needs = _search_needs(cmd.key)
        found: list[int] = []
        total = len(sel.entries)
        max_uid = sel.uids[-1] if sel.uids else 0
        for start in range(0, total, _FETCH_CHUNK):
            chunk = sel.entries[start : start + _FETCH_CHUNK]
            mids = [e.message_id for e in chunk]
            meta = await self.backend.meta(mids) if "meta" in needs else {}
            parts: dict[int, Part] = {}
            if "full" in needs:
                parts = await self.backend.messages(mids)
            elif "header" in needs:
                headers = await self.backend.headers(mids)
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
                if _matches(cmd.key, ctx):
                    found.append(entry.uid if cmd.uid else start + offset + 1)
        await self.emit(b"* SEARCH" + b"".join(b" %d" % n for n in found) + b"\r\n")
        await self._ok(cmd.tag, "SEARCH completed", expunge_ok=cmd.uid)

    async def do_fetch(self, cmd: Fetch) -> None:
        sel = self._sel()
        indexes = self._indexes(cmd.seqset, uid=cmd.uid)
        attrs = list(cmd.attrs)
        if cmd.uid and not any(a.name == "UID" for a in attrs):
            attrs.insert(0, FetchAttr("UID"))  # §6.4.8: UID FETCH always reports the UID
        # §6.4.5: BODY[] and RFC822(.TEXT) set \Seen; BODY.PEEK[] and RFC822.HEADER do not.
        sets_seen = not sel.readonly and any(
            a.name in ("RFC822", "RFC822.TEXT") or (a.name == "BODY" and a.section and not a.peek)
            for a in attrs
        )
        need_meta = any(a.name in ("RFC822.SIZE", "INTERNALDATE") for a in attrs)
        need_full = any(_needs_structure(a) for a in attrs)
        need_raw = not need_full and any(_needs_raw(a) for a in attrs)
        need_header = not (need_full or need_raw) and any(_needs_header(a) for a in attrs)
        ahead: Callable[[], list[int]] | None = None
        if need_raw and indexes:
            # A client walking the folder one FETCH at a time gets the next ones read along.
            if indexes[0] == sel.next_body_index and len(indexes) <= _FETCH_CHUNK:
                after = indexes[-1] + 1

                def ahead() -> list[int]:
                    return [e.message_id for e in sel.entries[after : after + _READ_AHEAD]]

            sel.next_body_index = indexes[-1] + 1
        vanished = False
        for start in range(0, len(indexes), _FETCH_CHUNK):
            chunk = indexes[start : start + _FETCH_CHUNK]
            entries = [sel.entries[i] for i in chunk]
            mids = [e.message_id for e in entries]
            meta = await self.backend.meta(mids) if need_meta else {}
            parts: dict[int, Part] = {}
            if need_full:
                parts = await self.backend.messages(mids)
            elif need_raw:
                parts = await self.backend.flat_messages(mids, ahead)
            elif need_header:
                headers = await self.backend.headers(mids)
                parts = {m: Part(h, b"") for m, h in headers.items()}
            flags_changed: set[int] = set()
            if sets_seen:
                unseen = [e.entry_id for e in entries if not _has(e.flags, "\\Seen")]
                if unseen:
                    new = await self.backend.update_flags(
                        sel.folder, unseen, "+", ("\\Seen",), self.origin
                    )
                    flags_changed = self._apply_flags(new)
            for i in chunk:
                entry = sel.entries[i]
                items = self._fetch_items(attrs, entry, meta, parts)
                if items is None:
                    vanished = True  # removed by another process under us
                    continue
                if entry.entry_id in flags_changed and not any(a.name == "FLAGS" for a in attrs):
                    items.append(b"FLAGS " + self._flags(entry))
                await self.emit(b"* %d FETCH (" % (i + 1) + b" ".join(items) + b")\r\n")
        if vanished:
            # RFC 2180 §4.1.3: NO for a message expunged meanwhile, never OK without its
            # data; the EXPUNGE follows at the next command that may carry it (§7.4.1).
            sel.resync_pending = True
            raise No("Some of the requested messages were deleted meanwhile", "EXPUNGEISSUED")
        await self._ok(cmd.tag, "FETCH completed", expunge_ok=cmd.uid)

    def _fetch_items(
        self,
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
                items.append(b"FLAGS " + self._flags(entry))
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
                items.append(_body_item(attr, part))
        return items

    def _flags(self, entry: Entry) -> bytes:
        flags = entry.flags
        if self.selected and entry.uid in self.selected.recent:
            flags = (*flags, "\\Recent")
        return R.flags(flags)

    def _apply_flags(self, new: dict[int, tuple[str, ...]]) -> set[int]:
        """Our own copy of flags after a write; returns the entry ids that changed."""
        sel = self._sel()
        changed: set[int] = set()
        for i, entry in enumerate(sel.entries):
            flags = new.get(entry.entry_id)
            if flags is not None and flags != entry.flags:
                sel.entries[i] = replace(entry, flags=flags)
                changed.add(entry.entry_id)
        return changed

    async def do_store(self, cmd: Store) -> None:
        sel = self._sel()
        if sel.readonly:
            raise No("The mailbox is read-only (EXAMINE)", "READ-ONLY")
        if "\\*" in cmd.flags:
            raise Bad("\\* is not a flag")
        indexes = self._indexes(cmd.seqset, uid=cmd.uid)
        ids = [sel.entries[i].entry_id for i in indexes]
        new = await self.backend.update_flags(sel.folder, ids, cmd.mode, cmd.flags, self.origin)
        self._apply_flags(new)
        if not cmd.silent:
            for i in indexes:
                entry = sel.entries[i]
                if entry.entry_id not in new:
                    continue
                uid = b"UID %d " % entry.uid if cmd.uid else b""
                await self.emit(
                    b"* %d FETCH (" % (i + 1) + uid + b"FLAGS " + self._flags(entry) + b")\r\n"
                )
        await self._ok(cmd.tag, "STORE completed", expunge_ok=cmd.uid)

    async def do_copy(self, cmd: CopyCommand) -> None:
        sel = self._sel()
        move = cmd.name == "MOVE"
        if move and sel.readonly:
            raise No("The mailbox is read-only (EXAMINE)", "READ-ONLY")
        key = self.resolve(cmd.mailbox)
        target = await self.backend.folder(*key) if key else None
        if target is None:
            raise No(f"No such mailbox: {cmd.mailbox}", "TRYCREATE")
        entries = [sel.entries[i] for i in self._indexes(cmd.seqset, uid=cmd.uid)]
        uidvalidity, pairs = await self.backend.copy(
            sel.folder, entries, target, move=move, origin=self.origin
        )
        code = None
        if pairs:
            old = R.sequence_set(p[0] for p in pairs).decode()
            new = R.sequence_set(p[1] for p in pairs).decode()
            code = f"COPYUID {uidvalidity} {old} {new}"
        if move:
            # RFC 6851 §4.3: COPYUID goes in an untagged OK before the EXPUNGEs.
            if code:
                await self.emit(f"* OK [{code}] Moved\r\n".encode())
            sel.expunge_pending.update(p[0] for p in pairs)
            await self._ok(cmd.tag, "MOVE completed")
        else:
            await self._ok(cmd.tag, "COPY completed", code)

    do_move = do_copy

    # --- sequence sets --------------------------------------------------------------

    def _indexes(self, seqset: SequenceSet, *, uid: bool) -> list[int]:
        """0-based positions named by a sequence set (§9 sequence-set)."""
        sel = self._sel()
        count = len(sel.uids)
        chosen: set[int] = set()
        if uid:
            if not count:
                return []
            top = sel.uids[-1]
            for r in seqset:
                # §6.4.8: "n:*" always includes the last message, even when n > its UID.
                lo, hi = sorted(
                    (top if r.first is None else r.first, top if r.last is None else r.last)
                )
                chosen.update(
                    range(bisect.bisect_left(sel.uids, lo), bisect.bisect_right(sel.uids, hi))
                )
        else:
            for r in seqset:
                first = count if r.first is None else r.first
                last = count if r.last is None else r.last
                if not count and (r.first is None or r.last is None):
                    continue
                if first > count or last > count:
                    raise Bad(f"No message with sequence number {max(first, last)}")
                lo, hi = sorted((first, last))
                chosen.update(range(lo - 1, hi))
        return sorted(chosen)

    # --- change notification --------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        """Called synchronously by the bus: queue the change, wake an IDLE."""
        sel = self.selected
        if sel is None:
            return
        if isinstance(event, MessageStored | EntriesCopied):
            sel.new_pending = True
        elif isinstance(event, FlagsChanged):
            if event.origin == self.origin:
                return
            for _, uid, flags in event.changes:
                sel.flags_pending[uid] = flags
        elif isinstance(event, EntriesExpunged):
            if event.origin == self.origin:
                return
            sel.expunge_pending.update(uid for _, uid in event.entries)
        elif isinstance(event, MessagesCleared | MessagesPruned | StoreResynced):
            # Counts only: reread the folder and report the difference (§7.4.1, §7.3.1).
            sel.resync_pending = True
        else:
            return
        self.wakeup.set()

    async def sync(self, *, expunge_ok: bool) -> None:
        """Tell the client what changed in the selected folder (§7.3.1, §7.4.1)."""
        self.wakeup.clear()
        sel = self.selected
        if sel is None:
            return
        if sel.resync_pending:
            sel.resync_pending = False
            current = {e.uid: e for e in await self.backend.entries(sel.folder.id)}
            sel.expunge_pending.update(uid for uid in sel.uids if uid not in current)
            for entry in sel.entries:
                fresh = current.get(entry.uid)
                if fresh is not None and fresh.flags != entry.flags:
                    sel.flags_pending[entry.uid] = fresh.flags
            sel.new_pending = True
        if expunge_ok and sel.expunge_pending:
            doomed = sorted(
                (i for uid in sel.expunge_pending if (i := sel.index_of(uid)) is not None),
                reverse=True,
            )
            sel.expunge_pending.clear()
            # Highest first: each EXPUNGE renumbers only the messages after it.
            for i in doomed:
                await self.emit(b"* %d EXPUNGE\r\n" % (i + 1))
                sel.recent.discard(sel.uids[i])
            if doomed:
                gone = set(doomed)
                sel.entries = [e for i, e in enumerate(sel.entries) if i not in gone]
                sel.reindex()
        if sel.new_pending:
            sel.new_pending = False
            after = sel.uids[-1] if sel.uids else 0
            fresh_entries = await self.backend.entries(sel.folder.id, after)
            if fresh_entries:
                sel.entries.extend(fresh_entries)
                sel.reindex()
                uids = [e.uid for e in fresh_entries]
                if sel.readonly:
                    seen = self.backend.recent_seen.get(sel.folder.id, 0)
                    sel.recent.update(u for u in uids if u > seen)
                else:
                    sel.recent |= self.backend.claim_recent(sel.folder.id, uids)
                await self.emit(
                    b"* %d EXISTS\r\n* %d RECENT\r\n" % (len(sel.entries), len(sel.recent))
                )
        if sel.flags_pending:
            pending, sel.flags_pending = sel.flags_pending, {}
            for uid, flags in sorted(pending.items()):
                i = sel.index_of(uid)
                if i is None or sel.entries[i].flags == flags:
                    continue
                sel.entries[i] = replace(sel.entries[i], flags=flags)
                await self.emit(
                    b"* %d FETCH (UID %d FLAGS " % (i + 1, uid)
                    + self._flags(sel.entries[i])
                    + b")\r\n"
                )

    async def _leave_folder(self) -> None:
        if self.selected is not None:
            self.backend.unwatch(self.selected.folder.key, self._on_event)
            self.selected = None

    async def close(self) -> None:
        """The connection is gone: stop watching."""
        await self._leave_folder()
        self.state = State.LOGOUT


# --- helpers --------------------------------------------------------------------------


def _has(flags: Iterable[str], flag: str) -> bool:
    wanted = flag.upper()
    return any(f.upper() == wanted for f in flags)


def _pattern(pattern: str) -> Callable[[str], bool]:
    """§6.3.8 LIST wildcards: ``*`` matches anything, ``%`` stops at the delimiter."""
    import re

    if pattern.upper().startswith(INBOX) and (
        len(pattern) == len(INBOX) or pattern[len(INBOX)] in (DELIMITER, "*", "%")
    ):
        pattern = INBOX + pattern[len(INBOX) :]
    regex = "".join(
        ".*" if c == "*" else f"[^{re.escape(DELIMITER)}]*" if c == "%" else re.escape(c)
        for c in pattern
    )
    compiled = re.compile(regex + r"\Z", re.DOTALL)
    return lambda name: compiled.match(name) is not None


def _is_header_section(attr: FetchAttr) -> bool:
    section = attr.section
    return (
        section is not None
        and not section.parts
        and section.text in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT")
    )


def _needs_structure(attr: FetchAttr) -> bool:
    """Items that need the MIME tree, not just the header/body split."""
    if attr.name == "BODYSTRUCTURE":
        return True
    if attr.name != "BODY":
        return False
    return attr.section is None or bool(attr.section.parts)


def _needs_raw(attr: FetchAttr) -> bool:
    return attr.name in ("RFC822", "RFC822.TEXT") or (
        attr.name == "BODY" and not _is_header_section(attr)
    )


def _needs_header(attr: FetchAttr) -> bool:
    return attr.name in ("ENVELOPE", "RFC822.HEADER") or _is_header_section(attr)


def _body_item(attr: FetchAttr, part: Part) -> bytes:
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


# --- SEARCH ------------------------------------------------------------------------


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
    "ANSWERED": lambda c: _has(c.entry.flags, "\\Answered"),
    "DELETED": lambda c: _has(c.entry.flags, "\\Deleted"),
    "DRAFT": lambda c: _has(c.entry.flags, "\\Draft"),
    "FLAGGED": lambda c: _has(c.entry.flags, "\\Flagged"),
    "SEEN": lambda c: _has(c.entry.flags, "\\Seen"),
    "UNANSWERED": lambda c: not _has(c.entry.flags, "\\Answered"),
    "UNDELETED": lambda c: not _has(c.entry.flags, "\\Deleted"),
    "UNDRAFT": lambda c: not _has(c.entry.flags, "\\Draft"),
    "UNFLAGGED": lambda c: not _has(c.entry.flags, "\\Flagged"),
    "UNSEEN": lambda c: not _has(c.entry.flags, "\\Seen"),
    "RECENT": lambda c: c.recent,
    "OLD": lambda c: not c.recent,
    "NEW": lambda c: c.recent and not _has(c.entry.flags, "\\Seen"),
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
        return bool(_has(ctx.entry.flags, str(args[0])) == (op == "KEYWORD"))
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
