"""Small modal screens: confirm, ask for a path, pick a chaos mode, the key help."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static

from sandbox.chaos import DnsFaultSetting, DomainChaos, MxFault


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [  # noqa: RUF012
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-title")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Yes (y)", id="yes", variant="error")
                yield Button("No (n)", id="no", variant="primary")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class PathPrompt(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]  # noqa: RUF012

    def __init__(self, title: str, default: str) -> None:
        super().__init__()
        self.title_text = title
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Input(self.default, id="path-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


# The faults the chaos screen offers, as `mail-sandbox chaos` would set them.
CHAOS_PRESETS: tuple[tuple[str, DomainChaos], ...] = (
    ("off", DomainChaos()),
    # the same default as `mail-sandbox chaos DOMAIN greylist` (MxFault.seconds)
    (
        f"greylist {MxFault('greylist').seconds:g} s (451 4.7.1, then accept)",
        DomainChaos(MxFault("greylist")),
    ),
    ("tempfail 451 at RCPT (deferred, then bounced)", DomainChaos(MxFault("tempfail"))),
    ("reject 550 at RCPT (bounce)", DomainChaos(MxFault("reject"))),
    ("reject 550 at MAIL", DomainChaos(MxFault("reject", stage="mail"))),
    ("disconnect at DATA", DomainChaos(MxFault("disconnect", stage="data"))),
    ("delay every reply 300 ms", DomainChaos(MxFault("delay", delay_ms=300))),
    ("rate limit 5 a minute (421)", DomainChaos(MxFault("ratelimit", per_minute=5))),
    ("reject 30% of RCPTs", DomainChaos(MxFault("reject", probability=0.3))),
    ("DNS SERVFAIL", DomainChaos(dns=DnsFaultSetting("servfail"))),
    ("DNS timeout", DomainChaos(dns=DnsFaultSetting("timeout"))),
    ("DNS NXDOMAIN", DomainChaos(dns=DnsFaultSetting("nxdomain"))),
    ("DNS delay 500 ms", DomainChaos(dns=DnsFaultSetting(None, 500))),
)


class ChaosPicker(ModalScreen[DomainChaos | None]):
    BINDINGS = [Binding("escape", "cancel", "Cancel")]  # noqa: RUF012

    def __init__(self, domain: str) -> None:
        super().__init__()
        self.domain = domain

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Make {self.domain} misbehave", classes="dialog-title")
            yield OptionList(*[label for label, _ in CHAOS_PRESETS], id="chaos-options")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(CHAOS_PRESETS[event.option_index][1])

    def action_cancel(self) -> None:
        self.dismiss(None)


HELP_KEYS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Main screen",
        (
            ("enter", "open the message (marks it read)"),
            ("/", "search: from:A to:B subject:S and any text (body: raw source)"),
            ("escape", "end the search (in the search bar or on the list)"),
            ("home, end", "newest, oldest message"),
            ("m", "mark read / unread (IMAP clients see it)"),
            ("d, delete", "delete the message"),
            ("R", "resend it through the submission server"),
            ("x", "clear the mailbox or folder chosen in the tree (asks first)"),
            ("X", "clear everything (asks first)"),
            ("tab", "move between the tree and the list"),
        ),
    ),
    (
        "Screens",
        (
            ("Q", "relay queue (r: retry every delivery now)"),
            ("D", "DNS log: queries as they happen"),
            ("S", "Sessions (SMTP, IMAP, POP3) and their transcripts"),
            ("C", "chaos: faults per domain (enter: choose, o: off)"),
            ("?", "this help"),
            ("ctrl+p", "command palette"),
            ("ctrl+q", "quit"),
        ),
    ),
    (
        "Message view",
        (
            ("1…7", "Text, HTML, Headers, Parts, Raw, Journey, Links"),
            ("s", "save the highlighted part (Parts tab; asks before replacing a file)"),
            ("o", "open the HTML in the browser (HTML tab)"),
            ("enter", "open the highlighted link in the browser (Links tab)"),
            ("m, d, R", "read/unread, delete, resend"),
            ("escape", "back"),
        ),
    ),
)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]  # noqa: RUF012

    def __init__(self, data_path: str = "") -> None:
        super().__init__()
        self.data_path = data_path

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for section, keys in HELP_KEYS:
            table.add_row(Text(section, style="bold underline"), "")
            for key, what in keys:
                table.add_row(key, what)
            table.add_row("", "")
        if self.data_path:
            table.add_row("data file", self.data_path)
        with VerticalScroll(classes="dialog help"):
            yield Label("Keys", classes="dialog-title")
            yield Static(table)

    def action_close(self) -> None:
        self.dismiss()
