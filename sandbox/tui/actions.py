"""What a screen may ask of the app, handed to it when it is made.

Screens get the ``Source`` (the store, chaos, retries) and an ``Actions`` (the things the
app does to messages) in their constructor, so no screen imports the app back: the
dependencies point one way, app → screens.
"""

from __future__ import annotations

from typing import Protocol

from sandbox.store.tui_views import Row


class Actions(Protocol):
    """The app's message actions; each runs in a worker and reports by notification."""

    def set_seen(self, rows: list[Row], seen: bool, *, quiet: bool = False) -> object: ...

    def delete_rows(self, rows: list[Row]) -> object: ...

    def resend(self, row: Row) -> object: ...

    def open_link(self, url: str) -> None: ...

    def open_html(self, html: str) -> None: ...
