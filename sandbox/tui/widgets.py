"""The main screen's widgets; each defines the messages it posts, named as past events."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Input, Sparkline, Static, Tree
from textual.widgets.data_table import ColumnKey
from textual.widgets.tree import TreeNode

from sandbox.store import SqliteStore
from sandbox.tui import queries
from sandbox.tui.queries import ListQuery, Row, TreeCounts
from sandbox.tui.render import clip, human_size, stamp

STATE_STYLES = {
    "delivered": "green",
    "queued": "cyan",
    "deferred": "yellow",
    "bounced": "bold red",
    "bounce": "red",
    "held": "magenta",
}


class EndpointsHeader(Static):
    """What a developer copies into their app's settings."""

    def show(self, ready: dict[str, Any], *, live: bool) -> None:
        def where(name: str) -> str:
            value = ready.get(name)
            if not value:
                return "—"
            host, port = value
            return f"{host}:{port}" if port else f"{host}:?"

        def port(name: str) -> str:
            value = ready.get(name)
            return f":{value[1]}" if value and value[1] else ":?"

        text = Text()
        text.append(" SMTP ", style="bold reverse")
        text.append(f" {where('smtp')} ", style="bold")
        text.append("STARTTLS · any AUTH accepted", style="dim")
        text.append("   SMTPS ", style="bold")
        text.append(port("smtps"))
        text.append("   DNS ", style="bold")
        text.append(where("dns"))
        text.append("   HTTP ", style="bold")
        text.append(port("http"))
        text.append(
            "   " + ("live" if live else "attached"), style="bold green" if live else "cyan"
        )
        text.append("\n POP3 ", style="bold")
        text.append(f"{port('pop3')} (TLS {port('pop3s')})")
        text.append("   IMAP ", style="bold")
        text.append(f"{port('imap')} (TLS {port('imaps')})")
        text.append("   login: mailbox address, any password; ", style="dim")
        text.append("all", style="bold")
        text.append(" sees all", style="dim")
        data = str(ready.get("data") or "")
        text.append("   data: ", style="dim")
        text.append(data.rsplit("/", 1)[-1] or data)
        self.update(text)


class MailboxTree(Tree[ListQuery]):
    """Domains → mailboxes → folders, with unread counts; plus All mail and Held."""

    class Chosen(Message):
        """The user picked a place: the list shows it."""

        def __init__(self, query: ListQuery, label: str) -> None:
            super().__init__()
            self.list_query = query
            self.label = label

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("Mail", data=ListQuery(), **kwargs)
        self.show_root = False
        self.guide_depth = 2
        self._place_nodes: dict[tuple[str, ...], TreeNode[ListQuery]] = {}
        self._names: dict[int, str] = {}

    def on_mount(self) -> None:
        self._all = self.root.add_leaf("All mail", data=ListQuery())
        self._held = self.root.add_leaf("Held (outside the sandbox)", data=ListQuery(held=True))
        self._names[id(self._all)] = "All mail"
        self._names[id(self._held)] = "Held"

    @staticmethod
    def _label(name: str, total: int, unread: int) -> Text:
        label = Text(name, style="bold" if unread else "")
        if unread:
            label.append(f" {unread}", style="bold cyan")
        label.append(f" /{total}", style="dim")
        return label

    def show_counts(self, counts: TreeCounts) -> None:
        self._all.set_label(self._label("All mail", counts.total, counts.unread))
        self._held.set_label(
            self._label("Held (outside the sandbox)", counts.held, counts.held_unread)
        )
        domains: dict[str, tuple[int, int]] = {}
        mailboxes: dict[str, tuple[int, int]] = {}
        for f in counts.folders:
            t, u = domains.get(f.domain, (0, 0))
            domains[f.domain] = (t + f.total, u + f.unread)
            t, u = mailboxes.get(f.mailbox, (0, 0))
            mailboxes[f.mailbox] = (t + f.total, u + f.unread)
        wanted: set[tuple[str, ...]] = set()
        for f in counts.folders:
            domain_key = (f.domain,)
            mailbox_key = (f.domain, f.mailbox)
            folder_key = (f.domain, f.mailbox, f.folder)
            wanted |= {domain_key, mailbox_key, folder_key}
            if domain_key not in self._place_nodes:
                self._place_nodes[domain_key] = self.root.add(
                    f.domain, data=ListQuery(domain=f.domain), expand=True
                )
                self._names[id(self._place_nodes[domain_key])] = f.domain
            if mailbox_key not in self._place_nodes:
                self._place_nodes[mailbox_key] = self._place_nodes[domain_key].add(
                    f.mailbox, data=ListQuery(mailbox=f.mailbox), expand=False
                )
                self._names[id(self._place_nodes[mailbox_key])] = f.mailbox
            if folder_key not in self._place_nodes:
                self._place_nodes[folder_key] = self._place_nodes[mailbox_key].add_leaf(
                    f.folder, data=ListQuery(mailbox=f.mailbox, folder=f.folder)
                )
                self._names[id(self._place_nodes[folder_key])] = f"{f.mailbox}/{f.folder}"
            self._place_nodes[folder_key].set_label(self._label(f.folder, f.total, f.unread))
        for domain, (total, unread) in domains.items():
            self._place_nodes[(domain,)].set_label(self._label(domain, total, unread))
        for key, node in list(self._place_nodes.items()):
            if key not in wanted:
                node.remove()
                del self._place_nodes[key]
            elif len(key) == 2:
                total, unread = mailboxes[key[1]]
                node.set_label(self._label(key[1], total, unread))

    def on_tree_node_selected(self, event: Tree.NodeSelected[ListQuery]) -> None:
        event.stop()
        if event.node.data is not None:
            self.post_message(
                self.Chosen(event.node.data, self._names.get(id(event.node), "All mail"))
            )

    def select_path(self, *key: str) -> None:
        """Move the cursor to a node (for keys and tests) and choose it."""
        node = self._place_nodes.get(tuple(key)) if key else self._all
        if node is None:
            return
        for ancestor in (node.parent, node.parent.parent if node.parent else None):
            if ancestor is not None:
                ancestor.expand()
        self.move_cursor(node)
        self.select_node(node)


class _Stamp(str):
    """The time cell; carries the entry id so the table can be sorted newest first."""

    entry_id: int

    def __new__(cls, text: str, entry_id: int) -> _Stamp:
        made = super().__new__(cls, text)
        made.entry_id = entry_id
        return made


def _sort_key(cell: Any) -> int:
    return int(getattr(cell, "entry_id", 0))


class MessageList(DataTable[Any]):
    """A window of the message list, newest first, paged from SQLite as the cursor moves.

    Only ``PAGE`` rows load at first; the next (older) page loads when the cursor comes
    near the bottom. Refreshes add rows newer than the top and update the ones shown.
    While the cursor is near the top ("following"), the window is trimmed back to a page.
    """

    PAGE = 200
    NEAR_END = 30
    COLUMNS = ("", "time", "from", "to / mailbox", "subject", "size", "state")
    WIDTHS = (1, 11, 20, 22, 0, 8, 9)

    class Selected(Message):
        """Enter (or a click) on a message."""

        def __init__(self, row: Row) -> None:
            super().__init__()
            self.row = row

    class Loaded(Message):
        """A window of rows is on screen (first paint, paging, or a refresh)."""

        def __init__(self, shown: int, newest: int | None) -> None:
            super().__init__()
            self.shown = shown
            self.newest = newest

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.store: SqliteStore | None = None
        self.list_query = ListQuery()
        self.rows_by_id: dict[int, Row] = {}
        self._exhausted = False
        self._paging = False
        self.generation = 0

    def on_mount(self) -> None:
        for name, width in zip(self.COLUMNS, self.WIDTHS, strict=True):
            self.add_column(name, key=name or "unread", width=width)

    def on_resize(self) -> None:
        """The subject takes whatever width the other columns leave."""
        # every column has one cell of padding each side; 2 more for the scrollbar
        fixed = sum(self.WIDTHS) + 2 * len(self.WIDTHS) + 2
        column = self.columns.get(ColumnKey("subject"))
        if column is not None:
            column.width = max(16, self.size.width - fixed)
            column.auto_width = False
            self._require_update_dimensions = True
            self.refresh()

    @property
    def current(self) -> Row | None:
        if not self.rows_by_id or self.cursor_row < 0 or self.cursor_row >= self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return self.rows_by_id.get(int(key)) if key is not None else None

    def _cells(self, row: Row) -> list[Any]:
        style = "bold" if not row.seen else ""
        where = row.mailbox if row.folder == "INBOX" else f"{row.mailbox}/{row.folder}"
        if row.folder == "Sent" and row.envelope_to:
            where = "→ " + ", ".join(row.envelope_to)
        return [
            Text("●", style="cyan") if not row.seen else "",
            _Stamp(stamp(row.received_at), row.id),
            Text(clip(row.sender, 20), style=style),
            Text(clip(where, 22), style=style),
            Text(
                clip(row.subject or "(no subject)", 200),
                style=style,
                no_wrap=True,
                overflow="ellipsis",
            ),
            Text(human_size(row.size), justify="right"),
            Text(row.state, style=STATE_STYLES.get(row.state, "")),
        ]

    def _add(self, row: Row) -> None:
        self.rows_by_id[row.id] = row
        self.add_row(*self._cells(row), key=str(row.id))

    def _update(self, row: Row) -> None:
        self.rows_by_id[row.id] = row
        for column, value in zip(self.COLUMNS, self._cells(row), strict=True):
            self.update_cell(str(row.id), column or "unread", value)

    def _remove(self, entry_id: int) -> None:
        self.rows_by_id.pop(entry_id, None)
        self.remove_row(str(entry_id))

    async def load(self, query: ListQuery) -> None:
        """Show a new place or search: the newest page."""
        assert self.store is not None
        self.generation += 1
        generation = self.generation
        rows = await queries.window(self.store, query, limit=self.PAGE)
        if generation != self.generation:
            return
        self.list_query = query
        self.clear()
        self.rows_by_id.clear()
        for row in rows:
            self._add(row)
        self._exhausted = len(rows) < self.PAGE
        if rows:
            self.move_cursor(row=0)
        self.post_message(self.Loaded(self.row_count, rows[0].id if rows else None))

    async def sync(self) -> None:
        """Bring the window up to date: new rows on top, changed ones updated, gone ones out.

        Near the top ("following") the window is the newest page again. Further down, the
        rows shown are re-read by id range and newer ones are added above them, unless
        more than a page arrived (then they wait until the cursor goes back up, rather
        than leave a hole in the list).
        """
        assert self.store is not None
        generation = self.generation
        following = self.cursor_row < self.NEAR_END or not self.rows_by_id
        if following:
            rows = await queries.window(self.store, self.list_query, limit=self.PAGE)
        else:
            floor, newest = min(self.rows_by_id), max(self.rows_by_id)
            shown = await queries.window(
                self.store,
                self.list_query,
                limit=len(self.rows_by_id) + 1,
                at_least=floor,
                below=newest + 1,
            )
            newer = await queries.window(
                self.store, self.list_query, limit=self.PAGE, at_least=newest + 1
            )
            rows = (newer if len(newer) < self.PAGE else []) + shown
        if generation != self.generation:
            return
        fresh = {row.id: row for row in rows}
        current = self.current
        added = False
        for entry_id in [i for i in self.rows_by_id if i not in fresh]:
            self._remove(entry_id)
        for row in rows:
            old = self.rows_by_id.get(row.id)
            if old is None:
                self._add(row)
                added = True
            elif old != row:
                self._update(row)
        if following:
            self._exhausted = len(rows) < self.PAGE
        if added:
            self.sort("time", key=_sort_key, reverse=True)
            keep = current is not None and (self.cursor_row > 0 or not following)
            if keep and current is not None and str(current.id) in self.rows:
                self.move_cursor(row=self.get_row_index(str(current.id)), animate=False)
        self.post_message(self.Loaded(self.row_count, max(self.rows_by_id, default=None)))

    @work(group="paging")
    async def load_more(self) -> None:
        if self._exhausted or self._paging or not self.rows_by_id or self.store is None:
            return
        self._paging = True
        generation = self.generation
        try:
            rows = await queries.window(
                self.store, self.list_query, limit=self.PAGE, below=min(self.rows_by_id)
            )
            if generation != self.generation:
                return
            for row in rows:
                if row.id not in self.rows_by_id:
                    self._add(row)
            self._exhausted = len(rows) < self.PAGE
            self.post_message(self.Loaded(self.row_count, max(self.rows_by_id, default=None)))
        finally:
            self._paging = False

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.cursor_row >= self.row_count - self.NEAR_END:
            self.load_more()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        key = event.row_key.value
        row = self.rows_by_id.get(int(key)) if key is not None else None
        if row is not None:
            self.post_message(self.Selected(row))


class SearchBar(Input):
    """``/``: from:, to:, subject: and free text (also searched in the raw body)."""

    class Searched(Message):
        """The user ran a search (empty text: no search)."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    BINDINGS = [("escape", "cancel", "Cancel search")]  # noqa: RUF012

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(placeholder="from:ann to:beta.test subject:order  any text", **kwargs)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Searched(event.value.strip()))

    def action_cancel(self) -> None:
        self.value = ""
        self.post_message(self.Searched(""))


class StatusLine(Horizontal):
    """Counts, the current place and search, and messages a minute as a sparkline."""

    def compose(self) -> ComposeResult:
        yield Static(id="status-text")
        yield Static("msg/min", id="status-label")
        yield Sparkline([0.0], id="status-spark")

    def show(self, text: str) -> None:
        self.query_one("#status-text", Static).update(text)

    def show_rate(self, per_minute: list[int]) -> None:
        spark = self.query_one("#status-spark", Sparkline)
        spark.data = [float(n) for n in per_minute] or [0.0]
        label = self.query_one("#status-label", Static)
        label.update(f"{per_minute[-1] if per_minute else 0} msg/min ")
