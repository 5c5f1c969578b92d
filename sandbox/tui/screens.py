"""The other screens: relay queue, DNS log, sessions (SMTP, IMAP, POP3), chaos.

Each reads the store (so it works the same in-process and attached) and reloads when
the app tells it something it shows changed (``changed``), and at least every
``REFRESH_SECONDS`` (the journal is written a moment after the event is published).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from sandbox.chaos import DomainChaos
from sandbox.store import tui_views
from sandbox.store.lookup import delivery_copies
from sandbox.tui.dialogs import ChaosPicker
from sandbox.tui.render import clip, clock
from sandbox.tui.source import Source

REFRESH_SECONDS = 1.0
LOG_ROWS = 1000  # the newest journal entries a log screen keeps


class SandboxScreen(Screen[None]):
    """A screen that reloads from the store; ``kinds`` are the events it cares about.

    Every subclass says how it fills itself: ``async def load(self)`` (checked when the
    class is defined).
    """

    kinds: frozenset[str] = frozenset()
    TITLE_TEXT = ""
    load: Callable[[], Awaitable[None]]

    BINDINGS = [Binding("escape,q", "close", "Back")]  # noqa: RUF012

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not inspect.iscoroutinefunction(getattr(cls, "load", None)):
            raise TypeError(f"{cls.__name__} must define async def load(self)")

    def __init__(self, source: Source) -> None:
        super().__init__()
        self.source = source

    def compose_title(self) -> Static:
        return Static(Text(self.TITLE_TEXT, style="bold"), classes="screen-title")

    def on_mount(self) -> None:
        self.reload()
        self.set_interval(REFRESH_SECONDS, self.reload)

    def changed(self, kinds: frozenset[str]) -> None:
        if kinds & (self.kinds | {"store.changed"}):
            self.reload()

    @work(exclusive=True, group="reload")
    async def reload(self) -> None:
        await self.load()

    def action_close(self) -> None:
        self.dismiss()


class QueueScreen(SandboxScreen):
    TITLE_TEXT = "Relay queue: deliveries not done yet (queued or deferred)"
    kinds = frozenset({"relay.queued", "relay.attempt", "message.stored"})
    BINDINGS = [Binding("r", "retry", "Retry all now")]  # noqa: RUF012

    def compose(self) -> ComposeResult:
        yield self.compose_title()
        yield DataTable(id="queue-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="queue-empty")
        yield Footer()

    async def load(self) -> None:
        pending = await self.source.store.pending_deliveries()
        copies = await delivery_copies(self.source.store, pending)
        table = self.query_one("#queue-table", DataTable)
        if not table.columns:
            table.add_columns(
                "id", "message", "domain", "recipients", "state", "tries", "next try", "last reply"
            )
        row = table.cursor_row
        table.clear()
        for d in pending:
            table.add_row(
                str(d.id),
                (f"#{copies[d.id]} " if d.id in copies else "")
                + clip(d.subject or "(no subject)", 30),
                d.domain,
                clip(", ".join(d.recipients), 30),
                Text(d.state, style="yellow" if d.state == "deferred" else "cyan"),
                str(d.attempts),
                clock(d.next_attempt_at),
                clip(d.last_reply or "", 60),
                key=str(d.id),
            )
        if pending:
            table.move_cursor(row=min(row, len(pending) - 1))
        self.query_one("#queue-empty", Static).update(
            "" if pending else Text("Nothing waiting: every delivery is done.", style="dim")
        )

    @work(group="retry")
    async def action_retry(self) -> None:
        count = await self.source.retry_now()
        self.notify(f"{count} deliver{'y' if count == 1 else 'ies'} will be retried now")
        await self.load()


class DnsLogScreen(SandboxScreen):
    TITLE_TEXT = "DNS log: every query the stub answered"
    kinds = frozenset({"dns.query"})

    def __init__(self, source: Source) -> None:
        super().__init__(source)
        self.last_id = 0

    def compose(self) -> ComposeResult:
        yield self.compose_title()
        yield DataTable(id="dns-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    async def load(self) -> None:
        store = self.source.store
        if self.last_id == 0:  # first load: the newest LOG_ROWS
            self.last_id = await tui_views.log_start(store, self.kinds, LOG_ROWS)
        events = await store.events(kind="dns.query", after_id=self.last_id, limit=LOG_ROWS)
        table = self.query_one("#dns-table", DataTable)
        if not table.columns:
            table.add_columns("time", "client", "via", "name", "type", "rcode", "answer", "fault")
        follow = table.cursor_row >= table.row_count - 1
        for event_id, at, _, data in events:
            self.last_id = event_id
            rcode = str(data.get("rcode", ""))
            table.add_row(
                clock(at, millis=True),
                str(data.get("client", "")),
                str(data.get("transport", "")),
                str(data.get("qname", "")),
                str(data.get("qtype", "")),
                Text(rcode, style="green" if rcode == "NOERROR" else "red"),
                clip(str(data.get("answer", "")), 50),
                str(data.get("fault") or ""),
            )
        while table.row_count > LOG_ROWS:
            first = next(iter(table.rows))
            table.remove_row(first)
        if events and follow:
            table.move_cursor(row=table.row_count - 1)


class SmtpLogScreen(SandboxScreen):
    TITLE_TEXT = "Sessions (SMTP, IMAP, POP3): highlight one to read its transcript"
    kinds = frozenset({"smtp.session", "smtp.progress", "imap.session", "pop3.session"})

    def __init__(self, source: Source) -> None:
        super().__init__(source)
        self.last_id = 0
        self.sessions: dict[str, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        yield self.compose_title()
        yield DataTable(id="smtp-table", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="transcript-pane"):
            yield Static(id="transcript")
        yield Footer()

    async def load(self) -> None:
        store = self.source.store
        if self.last_id == 0:
            self.last_id = await tui_views.log_start(store, self.kinds, LOG_ROWS)
        # A session is logged as it opens and as it changes (smtp.progress; IMAP and POP3
        # records with open=true), then once more when it ends: one row, updated in place.
        events = sorted(
            [
                event
                for kind in sorted(self.kinds)
                for event in await store.events(kind=kind, after_id=self.last_id, limit=LOG_ROWS)
            ]
        )[:LOG_ROWS]
        table = self.query_one("#smtp-table", DataTable)
        if not table.columns:
            for label in ("started", "server", "client", "helo", "auth", "tls", "messages"):
                table.add_column(label, key=label)
        for event_id, _at, kind, data in events:
            self.last_id = event_id
            smtp = kind.startswith("smtp.")
            key = (
                f"{data.get('server')} {data.get('peer')} {data.get('started_at')}"
                if smtp
                else str(data.get("session_id"))
            )
            self.sessions[key] = data
            still_open = kind == "smtp.progress" if smtp else bool(data.get("open"))
            # IMAP/POP3: the helo column says where the session is, the messages column
            # only whether it is open.
            where = str(data.get("folder") or "") + (" IDLE" if data.get("idling") else "")
            cells = {
                "started": clock(float(data.get("started_at") or _at), millis=True),
                "server": str(data.get("server", "")),
                "client": str(data.get("peer", "")),
                "helo": str(data.get("helo") or "") if smtp else where.strip(),
                "auth": str(data.get("auth_user" if smtp else "user") or ""),
                "tls": "yes" if data.get("tls") else "",
                "messages": (str(data.get("messages", 0)) if smtp else "")
                + (" (open)" if still_open else ""),
            }
            if key in table.rows:
                for column, value in cells.items():
                    table.update_cell(key, column, value)
            else:
                table.add_row(*cells.values(), key=key)
        if events and table.row_count:  # the highlighted session (an open one grows)
            current = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
            if current is not None:
                self.show_transcript(str(current))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.show_transcript(event.row_key.value)

    def show_transcript(self, key: str) -> None:
        data = self.sessions.get(key)
        if data is None:
            return
        text = Text()
        for line in data.get("transcript") or data.get("steps") or ():
            line = str(line)
            style = "cyan" if line.startswith(("C:", ">")) else ""
            text.append(line + "\n", style=style)
        self.query_one("#transcript", Static).update(text or Text("(no transcript)"))


class ChaosScreen(SandboxScreen):
    TITLE_TEXT = "Chaos: make a domain's MX server or DNS zone misbehave"
    kinds = frozenset()
    BINDINGS = [  # noqa: RUF012
        Binding("enter", "choose", "Choose fault"),
        Binding("o", "off", "Turn off"),
    ]

    def compose(self) -> ComposeResult:
        yield self.compose_title()
        yield DataTable(id="chaos-table", cursor_type="row")
        yield Footer()

    async def load(self) -> None:
        settings = await self.source.store.chaos()
        table = self.query_one("#chaos-table", DataTable)
        if not table.columns:
            table.add_columns("domain", "faults")
        row = table.cursor_row
        table.clear()
        for domain in self.source.config.domains:
            current = settings.get(domain.name)
            described = DomainChaos.from_json(current).describe() if current else "off"
            table.add_row(
                domain.name,
                Text(described, style="bold red" if current else "green"),
                key=domain.name,
            )
        if table.row_count:
            table.move_cursor(row=min(max(row, 0), table.row_count - 1))

    def _domain(self) -> str | None:
        table = self.query_one("#chaos-table", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return str(key) if key is not None else None

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_choose()

    def action_choose(self) -> None:
        domain = self._domain()
        if domain is None:
            return

        def chosen(chaos: DomainChaos | None) -> None:
            if chaos is not None:
                self.apply(domain, chaos)

        self.app.push_screen(ChaosPicker(domain), chosen)

    def action_off(self) -> None:
        domain = self._domain()
        if domain is not None:
            self.apply(domain, DomainChaos())

    @work(group="chaos")
    async def apply(self, domain: str, chaos: DomainChaos) -> None:
        try:
            await self.source.set_chaos(domain, chaos)
        except ValueError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(f"{domain}: {chaos.describe()}")
        await self.load()
