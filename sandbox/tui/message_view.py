"""One message: text, HTML, headers, MIME parts, raw source, its journey and its links."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from sandbox.tui.dialogs import PathPrompt
from sandbox.tui.queries import Row
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
    stamp,
)

if TYPE_CHECKING:
    from sandbox.tui.app import SandboxApp

RAW_LIMIT = 256 * 1024  # more than this of a raw message is not drawn (save it instead)
TABS = ("text", "html", "headers", "parts", "raw", "journey", "links")


@dataclass(frozen=True)
class Loaded:
    raw: bytes
    journey: tuple[Hop, ...]
    text: str
    html: str | None
    headers: list[tuple[str, str]]
    parts: list[Part]
    links: list[str]


def _prepare(raw: bytes, journey: tuple[Hop, ...]) -> Loaded:
    return Loaded(
        raw, journey, readable(raw), html_source(raw), headers(raw), mime_parts(raw), links(raw)
    )


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
        Binding("m", "toggle_seen", "Read/unread"),
        Binding("d", "delete", "Delete"),
        Binding("R", "resend", "Resend"),
    ]

    def __init__(self, row: Row) -> None:
        super().__init__()
        self.row = row
        self.loaded: Loaded | None = None

    @property
    def sandbox(self) -> SandboxApp:
        from sandbox.tui.app import SandboxApp

        assert isinstance(self.app, SandboxApp)
        return self.app

    def compose(self) -> ComposeResult:
        row = self.row
        summary = Text()
        summary.append("From     ", style="dim")
        summary.append(row.sender + "\n")
        summary.append("To       ", style="dim")
        summary.append(", ".join(row.to) or ", ".join(row.envelope_to) or "—")
        summary.append("\nSubject  ", style="dim")
        summary.append(row.subject or "(no subject)", style="bold")
        summary.append("\nStored   ", style="dim")
        summary.append(
            f"{row.mailbox} / {row.folder}  at {stamp(row.received_at)}"
            f"  {human_size(row.size)}  {row.state}"
        )
        yield Static(summary, id="message-summary")
        with TabbedContent(id="message-tabs"):
            with TabPane("Text", id="text"), VerticalScroll():
                yield Static("loading…", id="text-body")
            with TabPane("HTML", id="html"), VerticalScroll():
                yield Static("", id="html-body")
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
        store = self.sandbox.source.store
        raw = await store.raw(self.row.message_id)
        if raw is None:
            self.notify("This message is gone (deleted meanwhile).", severity="error")
            return
        record = await store.get_message(self.row.id)
        journey = (
            await store.journey_of(record) if record else await store.journey(self.row.message_id)
        )
        loaded = await asyncio.to_thread(_prepare, raw, journey)
        self.loaded = loaded
        self.query_one("#text-body", Static).update(Text(loaded.text))
        self.query_one("#html-body", Static).update(
            Syntax(loaded.html, "html", word_wrap=True, theme="ansi_dark")
            if loaded.html is not None
            else Text("(no HTML part)", style="dim")
        )
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
            self.sandbox.set_seen([self.row], True, quiet=True)

    def action_close(self) -> None:
        self.dismiss()

    def action_tab(self, tab: str) -> None:
        self.query_one("#message-tabs", TabbedContent).active = tab

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
        default = str(Path.cwd() / Path(name).name)

        def chosen(path: str | None) -> None:
            if path:
                self.save_part(part, Path(path).expanduser())

        self.app.push_screen(PathPrompt(f"Save {part.content_type} as", default), chosen)

    @work(group="save")
    async def save_part(self, part: Part, path: Path) -> None:
        data = part_bytes(part)
        try:
            await asyncio.to_thread(path.write_bytes, data)
        except OSError as exc:
            self.notify(f"Could not save {path}: {exc.strerror or exc}", severity="error")
            return
        self.notify(f"Saved {human_size(len(data))} to {path}")

    def on_link_list_opened(self, event: LinkList.Opened) -> None:
        self.sandbox.open_link(event.url)

    def action_toggle_seen(self) -> None:
        self.sandbox.set_seen([self.row], not self.row.seen)
        self.row = Row(**{**self.row.__dict__, "flags": self._toggled_flags()})

    def _toggled_flags(self) -> tuple[str, ...]:
        if self.row.seen:
            return tuple(f for f in self.row.flags if f.lower() != "\\seen")
        return (*self.row.flags, "\\Seen")

    def action_delete(self) -> None:
        self.sandbox.delete_rows([self.row])
        self.dismiss()

    def action_resend(self) -> None:
        self.sandbox.resend(self.row)
