"""One IMAP connection's commands, over the backend (RFC 3501): the dispatcher.

Theory of operation: ``execute`` checks a command against the state table in ``state``
(refused with BAD before any handler runs), then calls its ``do_<name>`` method here.
Handlers fail by raising an ``ImapError`` that renders itself with the tag. Each concern
has one home (pymap's layout): ``state`` holds the states, errors and ``ALLOWED``;
``selected`` the selected mailbox, its sequence numbers and the sync of changes that
other sessions, deliveries and the TUI make (told after each command, and at once during
IDLE); ``fetch`` what a FETCH item needs and how it renders; ``search`` SEARCH keys.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sandbox.events import Event
from sandbox.imap import response as R
from sandbox.imap.backend import Folder, FolderKey, ImapBackend
from sandbox.imap.fetch import (
    FETCH_CHUNK,
    READ_AHEAD,
    fetch_items,
    needs_header,
    needs_raw,
    needs_structure,
    sets_seen,
)
from sandbox.imap.message import Part
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
    Status,
    Store,
    UidExpunge,
)
from sandbox.imap.search import search
from sandbox.imap.selected import Selected, has_flag
from sandbox.imap.state import ALLOWED, Bad, Bye, ImapError, No, State, refusal
from sandbox.store import INBOX, SENT, TRASH, normalize_address

__all__ = ["ImapSettings", "Session", "State"]

DELIMITER = "/"
ALL_USER = "all"
_PROTECTED = frozenset({INBOX, SENT, TRASH})  # ingest delivers into these; never removed


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
    dedupe_sent: bool = True  # APPEND to Sent of a Message-ID already there keeps one copy
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
            "dedupe_sent",
        ):
            if hasattr(imap, name):
                values[name] = getattr(imap, name)
        logins = getattr(config, "logins", None)
        for name in ("allow_all", "all_password"):
            if hasattr(logins, name):
                values[name] = getattr(logins, name)
        values.update(overrides)
        return cls(**values)


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
                raise refusal(self.state, command.name)
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
        sel.keywords = list(snap.keywords)
        await self.emit(sel.flags_responses())
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
        if not await self.backend.create_folder(*key, subscribed=False):
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
        uid = None
        if self.settings.dedupe_sent and folder.name == SENT:
            uid = await self.backend.copy_with_message_id(folder, cmd.message)
        if uid is None:
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
            doomed = [e.entry_id for e in sel.entries if has_flag(e.flags, "\\Deleted")]
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
            chosen = {sel.uids[i] for i in sel.indexes(cmd.seqset, uid=True)}
        doomed = [
            e.entry_id
            for e in sel.entries
            if has_flag(e.flags, "\\Deleted") and (chosen is None or e.uid in chosen)
        ]
        gone = await self.backend.expunge(sel.folder, doomed, self.origin) if doomed else []
        sel.expunge_pending.update(uid for _, uid in gone)
        await self._ok(cmd.tag, "EXPUNGE completed")

    async def do_search(self, cmd: Search) -> None:
        if cmd.charset not in (None, "US-ASCII", "UTF-8"):
            raise No(f"Charset {cmd.charset} is not supported", "BADCHARSET (US-ASCII UTF-8)")
        sel = self._sel()
        found = await search(self.backend, sel, cmd.key, uid=cmd.uid)
        await self.emit(b"* SEARCH" + b"".join(b" %d" % n for n in found) + b"\r\n")
        await self._ok(cmd.tag, "SEARCH completed", expunge_ok=cmd.uid)

    async def do_fetch(self, cmd: Fetch) -> None:
        sel = self._sel()
        indexes = sel.indexes(cmd.seqset, uid=cmd.uid)
        attrs = list(cmd.attrs)
        if cmd.uid and not any(a.name == "UID" for a in attrs):
            attrs.insert(0, FetchAttr("UID"))  # §6.4.8: UID FETCH always reports the UID
        marks_seen = not sel.readonly and sets_seen(attrs)
        need_meta = any(a.name in ("RFC822.SIZE", "INTERNALDATE") for a in attrs)
        need_full = any(needs_structure(a) for a in attrs)
        need_raw = not need_full and any(needs_raw(a) for a in attrs)
        need_header = not (need_full or need_raw) and any(needs_header(a) for a in attrs)
        ahead: Callable[[], list[int]] | None = None
        if need_raw and indexes:
            # A client walking the folder one FETCH at a time gets the next ones read along.
            if indexes[0] == sel.next_body_index and len(indexes) <= FETCH_CHUNK:
                after = indexes[-1] + 1

                def ahead() -> list[int]:
                    return [e.message_id for e in sel.entries[after : after + READ_AHEAD]]

            sel.next_body_index = indexes[-1] + 1
        vanished = False
        for start in range(0, len(indexes), FETCH_CHUNK):
            chunk = indexes[start : start + FETCH_CHUNK]
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
            if marks_seen:
                unseen = [e.entry_id for e in entries if not has_flag(e.flags, "\\Seen")]
                if unseen:
                    new = await self.backend.update_flags(
                        sel.folder, unseen, "+", ("\\Seen",), self.origin
                    )
                    flags_changed = sel.apply_flags(new)
            for i in chunk:
                entry = sel.entries[i]
                items = fetch_items(sel, attrs, entry, meta, parts)
                if items is None:
                    vanished = True  # removed by another process under us
                    continue
                if entry.entry_id in flags_changed and not any(a.name == "FLAGS" for a in attrs):
                    items.append(b"FLAGS " + sel.render_flags(entry))
                await self.emit(b"* %d FETCH (" % (i + 1) + b" ".join(items) + b")\r\n")
        if vanished:
            # RFC 2180 §4.1.3: NO for a message expunged meanwhile, never OK without its
            # data; the EXPUNGE follows at the next command that may carry it (§7.4.1).
            sel.resync_pending = True
            raise No("Some of the requested messages were deleted meanwhile", "EXPUNGEISSUED")
        await self._ok(cmd.tag, "FETCH completed", expunge_ok=cmd.uid)

    async def do_store(self, cmd: Store) -> None:
        sel = self._sel()
        if sel.readonly:
            raise No("The mailbox is read-only (EXAMINE)", "READ-ONLY")
        if "\\*" in cmd.flags:
            raise Bad("\\* is not a flag")
        indexes = sel.indexes(cmd.seqset, uid=cmd.uid)
        ids = [sel.entries[i].entry_id for i in indexes]
        new = await self.backend.update_flags(sel.folder, ids, cmd.mode, cmd.flags, self.origin)
        sel.apply_flags(new)
        await sel.announce((f for flags in new.values() for f in flags), self.emit)
        if not cmd.silent:
            for i in indexes:
                entry = sel.entries[i]
                if entry.entry_id not in new:
                    continue
                uid = b"UID %d " % entry.uid if cmd.uid else b""
                await self.emit(
                    b"* %d FETCH (" % (i + 1) + uid + b"FLAGS " + sel.render_flags(entry) + b")\r\n"
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
        entries = [sel.entries[i] for i in sel.indexes(cmd.seqset, uid=cmd.uid)]
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

    # --- change notification --------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        """Called synchronously by the bus: queue the change, wake an IDLE."""
        if self.selected is not None and self.selected.on_event(event, self.origin):
            self.wakeup.set()

    async def sync(self, *, expunge_ok: bool) -> None:
        """Tell the client what changed in the selected folder (§7.3.1, §7.4.1)."""
        self.wakeup.clear()
        if self.selected is not None:
            await self.selected.sync(self.backend, self.emit, expunge_ok=expunge_ok)

    async def _leave_folder(self) -> None:
        if self.selected is not None:
            self.backend.unwatch(self.selected.folder.key, self._on_event)
            self.selected = None

    async def close(self) -> None:
        """The connection is gone: stop watching."""
        await self._leave_folder()
        self.state = State.LOGOUT


# --- helpers --------------------------------------------------------------------------


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
