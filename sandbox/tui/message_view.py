"""One message: text, HTML, headers, MIME parts, raw source, its journey and its links."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.syntax import Syntax
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, OptionList, Static, TabbedContent, TabPane

from sandbox.auth.verdicts import verdict_lines
from sandbox.store import Hop
from sandbox.store.lookup import journey_with_copy_ids
from sandbox.store.tui_views import Row
from sandbox.tui.actions import Actions
from sandbox.tui.dialogs import ConfirmScreen, PathPrompt
from sandbox.tui.render import (
    Part,
    headers,
    html_source,
    human_size,
    journey_text,
    links,
    mime_parts,
    part_bytes,
    readable,
    rendered_html,
    stamp,
)
from sandbox.tui.source import Source

RAW_LIMIT = 256 * 1024  # more than this of a raw message is not drawn (save it instead)
TABS = ("text", "html", "headers", "parts", "raw", "journey", "links")


@dataclass(frozen=True)
class Loaded:
    raw: bytes
    journey: tuple[Hop, ...]
    text: str
    html: str | None
    html_text: str | None
    headers: list[tuple[str, str]]
    parts: list[Part]
    links: list[str]


def _prepare(raw: bytes, journey: tuple[Hop, ...]) -> Loaded:
    html = html_source(raw)
    return Loaded(
        raw,
        journey,
        readable(raw),
        html,
        rendered_html(html) if html is not None else None,
        headers(raw),
        mime_parts(raw),
        links(raw),
    )


def safe_file_name(name: str) -> str:
    """A part's name as one file name here: no folders, no NUL (a sender chose it)."""
    cleaned = "".join("_" if ch in "\0/\\" or ord(ch) < 32 else ch for ch in name).strip()
    return cleaned.lstrip(".") or "part"


def header_addresses(headers: list[tuple[str, str]], name: str) -> str:
    """Every value of a header, as written (display names kept), joined."""
    return ", ".join(value for key, value in headers if key.lower() == name)


class PartsTable(DataTable[Any]):
    class SaveRequested(Message):
        """The user asked to save a part to a file."""

        def __init__(self, part: Part) -> None:
            super().__init__()
            self.part = part


class LinkList(OptionList):
    class Opened(Message):
        """The user chose a link to open in the system browser."""

        def __init__(self, url: str) -> None:
            super().__init__()
            self.url = url

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.post_message(self.Opened(str(event.option.prompt)))


class MessageScreen(Screen[None]):
    BINDINGS = [  # noqa: RUF012
        Binding("escape,q", "close", "Back"),
        Binding("1", "tab('text')", "Text", show=False),
        Binding("2", "tab('html')", "HTML", show=False),
        Binding("3", "tab('headers')", "Headers", show=False),
        Binding("4", "tab('parts')", "Parts", show=False),
        Binding("5", "tab('raw')", "Raw", show=False),
        Binding("6", "tab('journey')", "Journey", show=False),
        Binding("7", "tab('links')", "Links", show=False),
        Binding("s", "save_part", "Save part"),
        Binding("o", "open_html", "Open HTML", show=False),
        Binding("m", "toggle_seen", "Read/unread", show=False),  # in ?: the footer
        Binding("d", "delete", "Delete"),  # keeps to 80 columns
        Binding("R", "resend", "Resend", show=False),
    ]

    def __init__(self, row: Row, source: Source, actions: Actions) -> None:
        super().__init__()
        self.row = row
        self.source = source
        self.actions = actions
        self.loaded: Loaded | None = None

    def summary(self, found: list[tuple[str, str]] | None = None) -> Text:
        """From, To and Cc as the headers say them (display names too) once loaded."""
        row = self.row
        found = found or []
        text = Text()
        text.append("From     ", style="dim")
        text.append((header_addresses(found, "from") or row.sender) + "\n")
        text.append("To       ", style="dim")
        text.append(
            header_addresses(found, "to") or ", ".join(row.to) or ", ".join(row.envelope_to) or "—"
        )
        cc = header_addresses(found, "cc")
        if cc:
            text.append("\nCc       ", style="dim")
            text.append(cc)
        text.append("\nSubject  ", style="dim")
        text.append(row.subject or "(no subject)", style="bold")
        text.append("\nStored   ", style="dim")
        text.append(
            f"#{row.id}  {row.mailbox} / {row.folder}  at {stamp(row.received_at)}"
            f"  {human_size(row.size)}  {row.state}"
        )
        return text

    def compose(self) -> ComposeResult:
        yield Static(self.summary(), id="message-summary")
        with TabbedContent(id="message-tabs"):
            with TabPane("Text", id="text"), VerticalScroll():
                yield Static("loading…", id="text-body")
            with TabPane("HTML", id="html"), VerticalScroll():
                yield Static("", id="html-body")
                yield Static("", id="html-source")
            with TabPane("Headers", id="headers"):
                yield DataTable(id="headers-table", cursor_type="row")
            with TabPane("Parts", id="parts"):
                yield PartsTable(id="parts-table", cursor_type="row")
            with TabPane("Raw", id="raw"), VerticalScroll():
                yield Static("", id="raw-body")
            with TabPane("Journey", id="journey"), VerticalScroll():
                yield Static("", id="journey-body")
            with TabPane("Links", id="links"):
                yield LinkList(id="links-list")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(exclusive=True, group="message")
    async def load(self) -> None:
        store = self.source.store
        raw = await store.raw(self.row.message_id)
        if raw is None:
            self.notify("This message is gone (deleted meanwhile).", severity="error")
            return
        record = await store.get_message(self.row.id)
        journey = (
            await journey_with_copy_ids(store, record)
            if record
            else await store.journey(self.row.message_id)
        )
        loaded = await asyncio.to_thread(_prepare, raw, journey)
        self.loaded = loaded
        self.query_one("#message-summary", Static).update(self.summary(loaded.headers))
        self.query_one("#text-body", Static).update(Text(loaded.text))
        if loaded.html is not None and loaded.html_text is not None:
            rendered = Text("Rendered (o opens it in the browser):\n\n", style="dim")
            rendered.append(loaded.html_text.strip() + "\n\n")
            rendered.append("Source:", style="dim")
            self.query_one("#html-body", Static).update(rendered)
            self.query_one("#html-source", Static).update(
                Syntax(loaded.html, "html", word_wrap=True, theme="ansi_dark")
            )
        else:
            self.query_one("#html-body", Static).update(Text("(no HTML part)", style="dim"))
        table = self.query_one("#headers-table", DataTable)
        table.add_columns("name", "value")
        for name, value in loaded.headers:
            table.add_row(Text(name, style="bold"), value)
        parts = self.query_one("#parts-table", PartsTable)
        parts.add_columns("part", "type", "size", "file name", "disposition")
        for index, part in enumerate(loaded.parts):
            parts.add_row(
                part.path,
                "  " * part.depth + part.content_type,
                human_size(part.size) if part.size or not part.message.is_multipart() else "",
                part.filename or "",
                part.disposition or "",
                key=str(index),
            )
        shown = raw[:RAW_LIMIT].decode("utf-8", "replace")
        if len(raw) > RAW_LIMIT:
            shown += f"\n… {human_size(len(raw) - RAW_LIMIT)} more (save the message to see it)"
        self.query_one("#raw-body", Static).update(Text(shown))
        journey_body = journey_text(journey)
        if verdicts := verdict_lines(raw):  # sandbox.auth: what the receiving MX found
            journey_body.append("\n\n" + "\n".join(verdicts))
        self.query_one("#journey-body", Static).update(journey_body)
        link_list = self.query_one("#links-list", LinkList)
        if loaded.links:
            link_list.add_options([escape(url) for url in loaded.links])
        else:
            link_list.add_option("(no links in this message)")
            link_list.disabled = True
        if not self.row.seen:
            self.actions.set_seen([self.row], True, quiet=True)

    def action_close(self) -> None:
        self.dismiss()

    def action_tab(self, tab: str) -> None:
        self.query_one("#message-tabs", TabbedContent).active = tab
        self.focus_tab(tab)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.focus_tab(str(event.pane.id))

    def focus_tab(self, tab: str) -> None:
        """Arrows work in the tab at once: its table or list takes the focus."""
        wanted = {"headers": "#headers-table", "parts": "#parts-table", "links": "#links-list"}
        if tab in wanted:
            self.query_one(wanted[tab]).focus()

    def action_open_html(self) -> None:
        if self.loaded is None or self.loaded.html is None:
            self.notify("This message has no HTML part.", severity="warning")
            return
        self.actions.open_html(self.loaded.html)

    def action_save_part(self) -> None:
        tabs = self.query_one("#message-tabs", TabbedContent)
        if self.loaded is None:
            return
        if tabs.active != "parts":
            tabs.active = "parts"
            self.query_one("#parts-table", PartsTable).focus()
            self.notify("Pick a part, then press s to save it.")
            return
        table = self.query_one("#parts-table", PartsTable)
        if table.row_count == 0:
            return
        part = self.loaded.parts[table.cursor_row]
        name = part.filename or f"part-{part.path}.{part.content_type.split('/')[-1]}"
        default = str(Path.cwd() / safe_file_name(name))

        def chosen(path: str | None) -> None:
            if not path:
                return
            if "\0" in path:
                self.notify("A file name cannot contain a NUL character.", severity="error")
                return
            self.save_part(part, Path(path).expanduser())

        self.app.push_screen(PathPrompt(f"Save {part.content_type} as", default), chosen)

    @work(group="save")
    async def save_part(self, part: Part, path: Path, *, replace: bool = False) -> None:
        """Never overwrites without asking: an existing file gets a question first."""
        data = part_bytes(part)
        try:
            await asyncio.to_thread(_write, path, data, replace)
        except FileExistsError:

            def answered(yes: bool | None) -> None:
                if yes:
                    self.save_part(part, path, replace=True)

            self.app.push_screen(ConfirmScreen(f"{path} exists. Replace it?"), answered)
            return
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            self.notify(f"Could not save {path}: {reason}", severity="error")
            return
        self.notify(f"Saved {human_size(len(data))} to {path}")

    def on_link_list_opened(self, event: LinkList.Opened) -> None:
        self.actions.open_link(event.url)

    def action_toggle_seen(self) -> None:
        self.actions.set_seen([self.row], not self.row.seen)
        self.row = Row(**{**self.row.__dict__, "flags": self._toggled_flags()})

    def _toggled_flags(self) -> tuple[str, ...]:
        if self.row.seen:
            return tuple(f for f in self.row.flags if f.lower() != "\\seen")
        return (*self.row.flags, "\\Seen")

    def action_delete(self) -> None:
        self.actions.delete_rows([self.row])
        self.dismiss()

    def action_resend(self) -> None:
        self.actions.resend(self.row)


def _write(path: Path, data: bytes, replace: bool) -> None:
    """``x`` mode: fails with FileExistsError rather than overwrite, unless told to."""
    with path.open("wb" if replace else "xb") as file:
        file.write(data)
