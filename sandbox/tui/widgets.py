"""The main screen's widgets; each defines the messages it posts, named as past events."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import DataTable, Input, Sparkline, Static, Tree
from textual.widgets.data_table import ColumnKey
from textual.widgets.tree import TreeNode

from sandbox.store import SqliteStore, tui_views
from sandbox.store.tui_views import ListQuery, Row, TreeCounts
from sandbox.tui.render import clip, clock_minutes, human_size, stamp

STATE_STYLES = {
    "delivered": "green",
    "queued": "cyan",
    "deferred": "yellow",
    "bounced": "bold red",
    "bounce": "red",
    "held": "magenta",
}


# Listeners the header names itself; any other [host, port] in the ready line (an HTTP
# listener, say) is listed after DNS as it comes.
_NAMED = frozenset(
    {"event", "smtp", "smtps", "pop3", "pop3s", "imap", "imaps", "dns", "mx", "data"}
)


def endpoint_lines(ready: dict[str, Any], *, live: bool, width: int, data: str = "") -> Text:
    """The two header lines, fitted to ``width``.

    Each line is a row of segments; the essential ones (where SMTP, POP3 and IMAP listen)
    always show, the helpful ones (the login hint, the data file, TLS ports) are left out
    from the right when the terminal is too narrow, so nothing ever wraps.
    """
    if not ready:  # attached, and the serve process is not (or no longer) running
        return _fit(
            [
                [
                    (
                        Text(" no sandbox is running on this data file ", style="bold reverse red"),
                        True,
                    )
                ],
                [(Text(f" start one: mail-sandbox serve --data {data}"), True)],
            ],
            width,
        )
    host = str((ready.get("smtp") or ["127.0.0.1"])[0])

    def where(name: str, *, with_host: bool = False) -> str:
        value = ready.get(name)
        if not (isinstance(value, list) and len(value) == 2):
            return "—"
        h, port = value
        return f"{h}:{port}" if with_host or h != host else f":{port}"

    state = Text("  live" if live else "  attached", style="bold green" if live else "cyan")
    first: list[tuple[Text, bool]] = [
        (
            Text.assemble(
                (" SMTP ", "bold reverse"), (f" {where('smtp', with_host=True)}", "bold")
            ),
            True,
        ),
        (Text(" STARTTLS · any AUTH accepted", style="dim"), False),
        (Text.assemble(("  SMTPS ", "bold"), where("smtps")), False),
        (Text.assemble(("  DNS ", "bold"), where("dns")), True),
    ]
    for name, value in ready.items():
        if name not in _NAMED and isinstance(value, list) and len(value) == 2:
            first.append((Text.assemble((f"  {name.upper()} ", "bold"), where(name)), True))
    first.append((state, True))
    data = str(ready.get("data") or data)
    second: list[tuple[Text, bool]] = [
        (Text.assemble((" POP3 ", "bold"), where("pop3")), True),
        (Text(f" (TLS {where('pop3s')})"), False),
        (Text.assemble(("  IMAP ", "bold"), where("imap")), True),
        (Text(f" (TLS {where('imaps')})"), False),
        (
            Text.assemble(
                ("  login: ", "dim"),
                ("address", ""),
                (", any password · ", "dim"),
                ("all", "bold"),
                (" sees all", "dim"),
            ),
            False,
        ),
        (Text.assemble(("  data: ", "dim"), data.rsplit("/", 1)[-1] or data), False),
    ]
    return _fit([first, second], width)


def _fit(lines: list[list[tuple[Text, bool]]], width: int) -> Text:
    """Keep every essential segment and as many optional ones as fit, in order."""
    out = Text()
    for number, segments in enumerate(lines):
        room = width - sum(t.cell_len for t, essential in segments if essential)
        line = Text()
        for text, essential in segments:
            if essential:
                line.append_text(text)
            elif text.cell_len <= room:
                line.append_text(text)
                room -= text.cell_len
        line.truncate(width)
        if number:
            out.append("\n")
        out.append_text(line)
    return out


class EndpointsHeader(Static):
    """What a developer copies into their app's settings, on two lines at any width."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ready: dict[str, Any] = {}
        self.live = False
        self.data = ""

    def show(self, ready: dict[str, Any], *, live: bool, data: str = "") -> None:
        self.ready, self.live, self.data = ready, live, data
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        width = self.size.width or 80
        self.update(endpoint_lines(self.ready, live=self.live, width=width, data=self.data))


class MailboxTree(Tree[ListQuery]):
    """All mail; each sandbox domain (in configured order, shown before mail arrives) →
    its mailboxes → folders; Held → the outside domains' mailboxes. Mailboxes with no mail
    left are not shown. Labels: the count, and how many are unread ("12 · 3 new")."""

    class Chosen(Message):
        """The user picked a place: the list shows it."""

        def __init__(self, query: ListQuery, label: str) -> None:
            super().__init__()
            self.list_query = query
            self.label = label

    def __init__(self, domains: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__("Mail", data=ListQuery(), **kwargs)
        self.show_root = False
        self.guide_depth = 2
        self.domains = domains
        self._place_nodes: dict[tuple[str, ...], TreeNode[ListQuery]] = {}
        self._names: dict[int, str] = {}

    def on_mount(self) -> None:
        self._all = self.root.add_leaf("All mail", data=ListQuery())
        self._names[id(self._all)] = "All mail"
        for domain in self.domains:
            self._node((domain,), self.root, domain, ListQuery(domain=domain), expand=True)
        self._held = self.root.add("Held (outside)", data=ListQuery(held=True), expand=True)
        self._names[id(self._held)] = "Held"
        self.show_counts(TreeCounts((), 0, 0, 0, 0))

    @staticmethod
    def _label(name: str, total: int, unread: int) -> Text:
        label = Text(name, style="bold" if unread else "")
        label.append(f" {total}", style="dim")
        if unread:
            label.append(f" · {unread} new", style="bold cyan")
        return label

    def _node(
        self,
        key: tuple[str, ...],
        parent: TreeNode[ListQuery],
        name: str,
        query: ListQuery,
        *,
        expand: bool = False,
        leaf: bool = False,
    ) -> TreeNode[ListQuery]:
        """The node for ``key``, made where it sorts among its siblings if new."""
        node = self._place_nodes.get(key)
        if node is not None:
            return node
        siblings = [
            n
            for k, n in self._place_nodes.items()
            if len(k) == len(key) and k[:-1] == key[:-1] and n.parent is parent
        ]
        after = [n for n in siblings if self._names[id(n)].rsplit("/", 1)[-1] > name]
        before = after[0] if after and len(key) > 1 else None
        if before is not None:
            node = parent.add(name, data=query, before=before, expand=expand, allow_expand=not leaf)
        elif leaf:
            node = parent.add_leaf(name, data=query)
        else:
            node = parent.add(name, data=query, expand=expand)
        self._place_nodes[key] = node
        self._names[id(node)] = name if len(key) < 3 else f"{key[1]}/{name}"
        return node

    def show_counts(self, counts: TreeCounts) -> None:
        self._all.set_label(self._label("All mail", counts.total, counts.unread))
        self._held.set_label(self._label("Held (outside)", counts.held, counts.held_unread))
        totals: dict[tuple[str, ...], list[int]] = {}
        live = [f for f in counts.folders if f.domain in self.domains or f.total]
        mailboxes_with_mail = {f.mailbox for f in live if f.total}
        wanted: set[tuple[str, ...]] = {(d,) for d in self.domains}
        for f in live:
            if f.mailbox not in mailboxes_with_mail:
                continue  # emptied (say by clear): the mailbox leaves the tree
            fake = f.domain in self.domains
            top = self.root if fake else self._held
            domain_key = (f.domain,)
            mailbox_key = (f.domain, f.mailbox)
            folder_key = (f.domain, f.mailbox, f.folder)
            wanted |= {domain_key, mailbox_key, folder_key}
            domain_node = self._node(
                domain_key, top, f.domain, ListQuery(domain=f.domain), expand=fake
            )
            mailbox_node = self._node(
                mailbox_key, domain_node, f.mailbox, ListQuery(mailbox=f.mailbox)
            )
            self._node(
                folder_key,
                mailbox_node,
                f.folder,
                ListQuery(mailbox=f.mailbox, folder=f.folder),
                leaf=True,
            )
            for place in (domain_key, mailbox_key, folder_key):
                total, unread = totals.setdefault(place, [0, 0])
                totals[place] = [total + f.total, unread + f.unread]
        for key in sorted(self._place_nodes, key=len):  # a parent first: it takes its children
            node = self._place_nodes.get(key)
            if node is None:
                continue
            if key not in wanted:
                node.remove()
                for gone in [k for k in self._place_nodes if k[: len(key)] == key]:
                    del self._place_nodes[gone]
                continue
            total, unread = totals.get(key, [0, 0])
            node.set_label(self._label(key[-1], total, unread))

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
    # DataTable's Home/End scroll sideways; in a list of rows they mean newest and oldest.
    BINDINGS = [  # noqa: RUF012
        Binding("home", "scroll_top", "Newest", show=False),
        Binding("end", "scroll_bottom", "Oldest loaded", show=False),
    ]
    COLUMNS = ("", "time", "from", "to / mailbox", "subject", "size", "state")
    # Column widths by the list's width (0: the subject, which takes what is left; None:
    # hidden). Narrow, "to / mailbox" and size go first (the tree and the message view
    # say them), then the sender shortens; the subject always keeps at least 16 cells.
    LAYOUTS: tuple[tuple[int, tuple[int | None, ...]], ...] = (
        (130, (1, 11, 24, 26, 0, 8, 9)),
        (90, (1, 11, 18, 18, 0, None, 9)),
        (0, (1, 5, 12, None, 0, None, 9)),  # 80 columns: the time of day only
    )

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
        self.widths: tuple[int | None, ...] = ()

    def on_mount(self) -> None:
        self._set_columns(self.LAYOUTS[0][1])

    def _set_columns(self, widths: tuple[int | None, ...]) -> None:
        """Columns for a layout; the rows shown are drawn again in it."""
        self.widths = widths
        rows = sorted(self.rows_by_id.values(), key=lambda r: r.id, reverse=True)
        current = self.current
        self.clear(columns=True)
        for name, width in zip(self.COLUMNS, widths, strict=True):
            if width is not None:
                self.add_column(name, key=name or "unread", width=width)
        for row in rows:
            self.add_row(*self._cells(row), key=str(row.id))
        if current is not None and str(current.id) in self.rows:
            self.move_cursor(row=self.get_row_index(str(current.id)), animate=False)

    def on_resize(self) -> None:
        """Pick the layout for this width; the subject takes whatever the others leave."""
        width = self.size.width
        layout = next(w for least, w in self.LAYOUTS if width >= least)
        if layout != self.widths:
            self._set_columns(layout)
        shown = [w for w in layout if w is not None]
        # every column has one cell of padding each side; 2 more for the scrollbar
        fixed = sum(shown) + 2 * len(shown) + 2
        column = self.columns.get(ColumnKey("subject"))
        if column is not None:
            column.width = max(16, width - fixed)
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
        widths = self.widths or self.LAYOUTS[0][1]
        cells: list[Any] = [
            Text("●", style="cyan") if not row.seen else "",
            _Stamp(
                stamp(row.received_at)
                if (widths[1] or 0) >= 11
                else clock_minutes(row.received_at),
                row.id,
            ),
            Text(clip(row.sender, widths[2] or 20), style=style),
            Text(clip(where, widths[3] or 22), style=style),
            Text(
                clip(row.subject or "(no subject)", 200),
                style=style,
                no_wrap=True,
                overflow="ellipsis",
            ),
            Text(human_size(row.size), justify="right"),
            Text(row.state, style=STATE_STYLES.get(row.state, "")),
        ]
        return [cell for cell, width in zip(cells, widths, strict=True) if width is not None]

    def _add(self, row: Row) -> None:
        self.rows_by_id[row.id] = row
        self.add_row(*self._cells(row), key=str(row.id))

    def _update(self, row: Row) -> None:
        self.rows_by_id[row.id] = row
        shown = [c for c, w in zip(self.COLUMNS, self.widths, strict=True) if w is not None]
        for column, value in zip(shown, self._cells(row), strict=True):
            self.update_cell(str(row.id), column or "unread", value)

    def _remove(self, entry_id: int) -> None:
        self.rows_by_id.pop(entry_id, None)
        self.remove_row(str(entry_id))

    async def load(self, query: ListQuery) -> None:
        """Show a new place or search: the newest page."""
        assert self.store is not None
        self.generation += 1
        generation = self.generation
        rows = await tui_views.window(self.store, query, limit=self.PAGE)
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
            rows = await tui_views.window(self.store, self.list_query, limit=self.PAGE)
        else:
            floor, newest = min(self.rows_by_id), max(self.rows_by_id)
            shown = await tui_views.window(
                self.store,
                self.list_query,
                limit=len(self.rows_by_id) + 1,
                at_least=floor,
                below=newest + 1,
            )
            newer = await tui_views.window(
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
            rows = await tui_views.window(
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
