"""The Textual app: ``make_app`` builds it for the CLI (``up``, ``tui``) and for the tests.

Theory of operation: a ``Source`` (``source.py``) gives the store and a stream of what
changed. Changes are merged and applied at most every ``THROTTLE_SECONDS``: the first
change after a quiet spell is shown at once (a new message reaches the list in
milliseconds), a flood is merged into a few refreshes a second. The message list shows a
window of rows paged from SQLite; folder counts and the totals, which scan more rows,
refresh at most every ``COUNTS_SECONDS``.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
import webbrowser
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import aiosmtplib
from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer

from sandbox.config import Config
from sandbox.runtime import Runtime, StartupError
from sandbox.store import SqliteStore, StoreError, tui_views
from sandbox.store.tui_views import ListQuery, Row
from sandbox.tui.dialogs import ConfirmScreen, HelpScreen
from sandbox.tui.message_view import MessageScreen
from sandbox.tui.screens import (
    ChaosScreen,
    DnsLogScreen,
    QueueScreen,
    SandboxScreen,
    SmtpLogScreen,
)
from sandbox.tui.search import parse_search
from sandbox.tui.source import AttachedSource, LiveSource, Source
from sandbox.tui.widgets import (
    EndpointsHeader,
    MailboxTree,
    MessageList,
    SearchBar,
    StatusLine,
)

log = logging.getLogger(__name__)

THROTTLE_SECONDS = 0.25  # at most 4 list refreshes a second
COUNTS_SECONDS = 1.0
# Events after which the list, the tree or the totals may show something else.
LIST_KINDS = frozenset(
    {
        "message.stored",
        "messages.cleared",
        "messages.moved",
        "flags.changed",
        "entries.expunged",
        "entries.copied",
        "relay.queued",
        "relay.attempt",
        "store.changed",
    }
)

UrlOpener = Callable[[str], object]


class MainScreen(Screen[None]):
    """Endpoints, the mailbox tree, the message list, the status line."""

    BINDINGS = [  # noqa: RUF012
        Binding("slash", "search", "Search"),
        Binding("m", "toggle_seen", "Read/unread"),
        Binding("d,delete", "delete", "Delete"),
        Binding("R", "resend", "Resend", show=False),  # these are in ? and the palette:
        Binding("x", "clear_place", "Clear", show=False),  # the footer fits 80 columns
        Binding("escape", "end_search", "End search", show=False),
        Binding("X", "clear_all", "Clear all", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield EndpointsHeader(id="endpoints")
        with Horizontal(id="main"):
            yield MailboxTree(tuple(d.name for d in self.sandbox.config.domains), id="tree")
            with Vertical(id="list-pane"):
                yield MessageList(id="messages")
                yield SearchBar(id="search")
        yield StatusLine(id="status")
        yield Footer()

    @property
    def sandbox(self) -> SandboxApp:
        assert isinstance(self.app, SandboxApp)
        return self.app

    @property
    def messages(self) -> MessageList:
        return self.query_one(MessageList)

    def on_mount(self) -> None:
        self.messages.focus()
        self.sandbox.start()  # once the widgets it fills exist

    def action_search(self) -> None:
        bar = self.query_one(SearchBar)
        bar.add_class("open")
        bar.focus()

    def action_end_search(self) -> None:
        """Esc on the list ends an active search, as the help says."""
        if self.sandbox.search:
            self.query_one(SearchBar).action_cancel()

    def on_search_bar_searched(self, event: SearchBar.Searched) -> None:
        bar = self.query_one(SearchBar)
        if not event.text:
            bar.remove_class("open")
        self.sandbox.search = event.text
        self.sandbox.show_place()
        self.messages.focus()

    def on_mailbox_tree_chosen(self, event: MailboxTree.Chosen) -> None:
        self.sandbox.place = event.list_query
        self.sandbox.place_label = event.label
        self.sandbox.show_place()

    def on_message_list_selected(self, event: MessageList.Selected) -> None:
        self.app.push_screen(MessageScreen(event.row, self.sandbox.source, self.sandbox))

    def on_message_list_loaded(self, event: MessageList.Loaded) -> None:
        self.sandbox.list_loaded(event.shown)

    def action_toggle_seen(self) -> None:
        row = self.messages.current
        if row is not None:
            self.sandbox.set_seen([row], not row.seen)

    def action_delete(self) -> None:
        row = self.messages.current
        if row is not None:
            self.sandbox.delete_rows([row])

    def action_resend(self) -> None:
        row = self.messages.current
        if row is not None:
            self.sandbox.resend(row)

    def action_clear_place(self) -> None:
        self.sandbox.clear_place()

    def action_clear_all(self) -> None:
        self.sandbox.clear_place(everything=True)


class SandboxApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "mail-sandbox"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-normal"), (180, "-wide")]  # noqa: RUF012
    BINDINGS = [  # noqa: RUF012
        Binding("Q", "open_screen('queue')", "Queue"),
        Binding("D", "open_screen('dns')", "DNS log", show=False),
        Binding("S", "open_screen('smtp')", "Session log", show=False),
        Binding("C", "open_screen('chaos')", "Chaos"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),  # what a developer tries first (ctrl+q works too)
    ]
    SCREENS_BY_NAME: dict[str, type[SandboxScreen]] = {  # noqa: RUF012
        "queue": QueueScreen,
        "dns": DnsLogScreen,
        "smtp": SmtpLogScreen,
        "chaos": ChaosScreen,
    }

    def __init__(self, source: Source, *, url_opener: UrlOpener | None = None) -> None:
        super().__init__()
        self.source = source
        self.config: Config = source.config
        self.url_opener: UrlOpener = url_opener or webbrowser.open
        self.place = ListQuery()
        self.place_label = "All mail"
        self.search = ""
        self.startup_error: str | None = None
        self.first_paint: float | None = None  # monotonic time the list first had rows
        self.mounted_at = time.monotonic()
        self._pending: set[str] = set()
        self._flush_scheduled = False
        self._refreshing = False
        self._last_flush = 0.0
        self._last_counts = 0.0
        self._counts_stale = False
        self._total = 0
        self._unread = 0
        self._shown = 0
        self._waiting = 0
        self._endpoints: dict[str, Any] = {}

    def get_default_screen(self) -> Screen[Any]:
        return MainScreen()

    @property
    def main(self) -> MainScreen:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        raise RuntimeError("the main screen is gone")

    @property
    def ready(self) -> bool:
        """True once the data file is open and the first window is on screen."""
        return self.first_paint is not None

    # --- start and stop ---------------------------------------------------------------

    def on_mount(self) -> None:
        self.mounted_at = time.monotonic()

    @work(group="start")
    async def start(self) -> None:
        try:
            await self.source.open()
        except (StartupError, StoreError, OSError) as exc:
            self.startup_error = str(exc)
            self.exit(return_code=1)
            return
        main = self.main
        self.show_endpoints()
        main.messages.store = self.source.store
        await main.messages.load(self.current_query())
        await self.refresh_counts()
        await self.refresh_rate()
        self.follow()
        self.set_interval(COUNTS_SECONDS, self._tick)

    async def on_unmount(self) -> None:
        await self.source.close()

    @work(group="follow")
    async def follow(self) -> None:
        try:
            async for kinds in self.source.changes():
                self.changed(kinds)
        except (StoreError, RuntimeError, ValueError) as exc:  # the store closed under us
            log.info("stopped following changes: %s", exc)

    # --- merging and throttling changes -----------------------------------------------

    def changed(self, kinds: Iterable[str]) -> None:
        self._pending.update(kinds)
        self._schedule()

    def _schedule(self) -> None:
        if self._flush_scheduled or self._refreshing or not self._pending:
            return
        self._flush_scheduled = True
        delay = max(0.001, self._last_flush + THROTTLE_SECONDS - time.monotonic())
        self.set_timer(delay, self._flush_changes)

    def _flush_changes(self) -> None:
        self._flush_scheduled = False
        kinds = frozenset(self._pending)
        self._pending.clear()
        self._refreshing = True
        self._last_flush = time.monotonic()
        self.apply_changes(kinds)

    @work(group="refresh")
    async def apply_changes(self, kinds: frozenset[str]) -> None:
        try:
            if kinds & LIST_KINDS and self.source.is_open:
                await self.main.messages.sync()
                if time.monotonic() - self._last_counts >= COUNTS_SECONDS:
                    await self.refresh_counts()
                else:
                    self._counts_stale = True
            for screen in self.screen_stack:
                if isinstance(screen, SandboxScreen):
                    screen.changed(kinds)
        except Exception as exc:
            log.exception("refresh failed")
            self.notify(f"Could not refresh: {exc}", severity="error")
        finally:
            self._refreshing = False
            self._schedule()

    def show_endpoints(self) -> None:
        """Attached, the serve process may stop or start again: the header follows it."""
        self._endpoints = self.source.ready()
        self.main.query_one(EndpointsHeader).show(
            self._endpoints, live=self.source.live, data=self.config.data
        )

    async def _tick(self) -> None:
        if not self.source.is_open:
            return
        try:
            if self.source.ready() != self._endpoints:
                self.show_endpoints()
            if self._counts_stale:
                await self.refresh_counts()
            await self.refresh_rate()
        except NoMatches:  # the main screen's widgets are gone: the app is closing
            return

    async def refresh_counts(self) -> None:
        store = self.source.store
        self._counts_stale = False
        self._last_counts = time.monotonic()
        counts = await tui_views.tree_counts(store)
        self.main.query_one(MailboxTree).show_counts(counts)
        self._total = await tui_views.count(store, self.current_query())
        self._unread = counts.unread
        self._waiting = await tui_views.waiting_deliveries(store)
        self.show_status()

    async def refresh_rate(self) -> None:
        if self.source.is_open:
            per_minute = await tui_views.per_minute(self.source.store)
            self.main.query_one(StatusLine).show_rate(per_minute)

    # --- the list -----------------------------------------------------------------------

    def current_query(self) -> ListQuery:
        return self.place.with_search(parse_search(self.search)) if self.search else self.place

    def list_loaded(self, shown: int) -> None:
        self._shown = shown
        if self.first_paint is None and self.source.is_open:
            self.first_paint = time.monotonic()
        self.show_status()

    def show_status(self) -> None:
        text = f"{self.place_label}: {self._total:,} message{'s' if self._total != 1 else ''}"
        text += f" · {self._unread:,} unread in all"
        if self._shown < self._total:  # the list pages; say how much of it is loaded
            text += f" · showing {self._shown:,}"
        if self.search:
            text += f" · search: {self.search}"
        if self._waiting:
            text += f" · relay queue: {self._waiting} waiting"
        self.main.query_one(StatusLine).show(text)

    @work(exclusive=True, group="place")
    async def show_place(self) -> None:
        if not self.source.is_open:
            return
        try:
            await self.main.messages.load(self.current_query())
            await self.refresh_counts()
        except Exception as exc:
            log.exception("loading the list failed")
            self.notify(f"Could not load the list: {exc}", severity="error")

    # --- actions on messages ----------------------------------------------------------

    @work(group="flags")
    async def set_seen(self, rows: list[Row], seen: bool, *, quiet: bool = False) -> None:
        try:
            await self.source.store.set_seen([r.id for r in rows], seen)
        except StoreError as exc:
            self.notify(f"Could not change flags: {exc}", severity="error")
            return
        # The store announced FlagsChanged: IMAP sessions in any process tell their clients.
        if not quiet:
            self.notify(f"Marked {'read' if seen else 'unread'}")
        self.changed({"flags.changed"})

    @work(group="delete")
    async def delete_rows(self, rows: list[Row]) -> None:
        await self._delete([r.id for r in rows])

    async def _delete(self, entry_ids: list[int]) -> None:
        try:
            deleted = await self.source.store.delete_entries(entry_ids)
        except StoreError as exc:
            self.notify(f"Could not delete: {exc}", severity="error")
            return
        self.notify(f"Deleted {len(deleted)} message{'s' if len(deleted) != 1 else ''}")
        self.changed({"entries.expunged"})

    def clear_place(self, *, everything: bool = False) -> None:
        place = ListQuery() if everything else self.place
        label = "every message" if place == ListQuery() else f"every message in {self.place_label}"

        def answered(yes: bool | None) -> None:
            if yes:
                self.clear(place)

        self.push_screen(ConfirmScreen(f"Delete {label}?"), answered)

    @work(group="delete")
    async def clear(self, place: ListQuery) -> None:
        store = self.source.store
        if place == ListQuery():
            count = await store.clear()  # announces MessagesCleared to every process
            self.notify(f"Deleted {count} message{'s' if count != 1 else ''}")
            self.changed({"messages.cleared"})
            return
        await self._delete(await tui_views.matching_entry_ids(store, place))

    @work(group="resend")
    async def resend(self, row: Row) -> None:
        """Submit the stored bytes again to the submission server, with the same envelope."""
        store = self.source.store
        raw = await store.raw(row.message_id)
        envelope = await tui_views.envelope(store, row.message_id)
        if raw is None or envelope is None:
            self.notify("This message is gone.", severity="error")
            return
        sender, recipients = envelope
        host, port = self.source.smtp_address()
        try:
            await aiosmtplib.send(
                raw,
                sender=sender,
                recipients=list(recipients or row.to),
                hostname=host,
                port=port,
                start_tls=False,
                timeout=10,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            self.notify(f"Could not resend through {host}:{port}: {exc}", severity="error")
            return
        self.notify(f"Resent to {', '.join(recipients)} through {host}:{port}")

    def open_link(self, url: str) -> None:
        self._open_link(url)

    @work(thread=True, group="browser")
    def _open_link(self, url: str) -> None:
        try:
            self.url_opener(url)
        except Exception as exc:
            self.call_from_thread(self.notify, f"Could not open {url}: {exc}", severity="error")
            return
        self.call_from_thread(self.notify, f"Opened {url}")

    def open_html(self, html: str) -> None:
        self._open_html(html)

    @work(thread=True, group="browser")
    def _open_html(self, html: str) -> None:
        """A temporary file, left for the browser to read (it may load it after we return)."""
        try:
            with tempfile.NamedTemporaryFile(
                "w", encoding="utf-8", suffix=".html", prefix="mail-sandbox-", delete=False
            ) as file:
                file.write(html)
            url = Path(file.name).as_uri()
            self.url_opener(url)
        except Exception as exc:
            self.call_from_thread(self.notify, f"Could not open the HTML: {exc}", severity="error")
            return
        self.call_from_thread(self.notify, f"Opened {url}")

    # --- screens ------------------------------------------------------------------------

    def action_open_screen(self, name: str) -> None:
        screen = self.SCREENS_BY_NAME[name](self.source)
        if isinstance(self.screen, SandboxScreen | MessageScreen):
            if type(self.screen) is type(screen):
                return
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.config.data))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        for command in super().get_system_commands(screen):
            if command.title != "Keys":  # ours below lists every key, as `?` does
                yield command
        yield SystemCommand(
            "Relay queue",
            "Deliveries waiting, retry them",
            lambda: self.action_open_screen("queue"),
        )
        yield SystemCommand(
            "DNS log", "Queries the DNS stub answered", lambda: self.action_open_screen("dns")
        )
        yield SystemCommand(
            "Sessions",
            "SMTP, IMAP and POP3 sessions as they happen",
            lambda: self.action_open_screen("smtp"),
        )
        yield SystemCommand(
            "Chaos", "Make a domain misbehave", lambda: self.action_open_screen("chaos")
        )
        yield SystemCommand("Search messages", "Filter the list", self._palette_search)
        yield SystemCommand(
            "Clear everything", "Delete every message", lambda: self.clear_place(everything=True)
        )
        yield SystemCommand("Keys", "Every key binding", self.action_help)

    def _palette_search(self) -> None:
        if isinstance(self.screen, MainScreen):
            self.screen.action_search()


def make_app(
    config: Config,
    *,
    runtime: Runtime | None = None,
    store: SqliteStore | None = None,
    configured_endpoints: bool = False,
    url_opener: UrlOpener | None = None,
) -> SandboxApp:
    """The TUI over a ``Runtime`` in this process (started on mount unless it runs
    already), or attached to the data file of ``config`` (or an open ``store``).

    ``configured_endpoints`` shows the configured ports rather than the ones the runtime
    got (snapshot tests run on port 0 but want the same header every time).
    """
    source: Source
    if runtime is not None:
        source = LiveSource(runtime, configured_endpoints=configured_endpoints)
    else:
        source = AttachedSource(config, store)
    return SandboxApp(source, url_opener=url_opener)


async def wait_ready(app: SandboxApp, limit: float = 10.0) -> None:
    """For tests and the benchmark: until the first window of the list is on screen."""
    deadline = time.monotonic() + limit
    while not app.ready:
        if app.startup_error is not None:
            raise RuntimeError(app.startup_error)
        if time.monotonic() > deadline:
            raise TimeoutError("the TUI did not show the list in time")
        await asyncio.sleep(0.01)
