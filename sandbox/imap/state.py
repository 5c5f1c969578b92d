"""IMAP errors and the state table: which commands each session state accepts.

Theory of operation (RFC 3501 §3, RFC 9051 §3): a session starts not authenticated;
LOGIN/AUTHENTICATE take it to authenticated; SELECT/EXAMINE to selected; CLOSE, UNSELECT
or a failed SELECT back to authenticated; LOGOUT (or a BYE) ends it. ``ALLOWED`` is the
one table of which commands each state accepts: the session refuses anything outside it
with BAD before any ``do_<name>`` method runs. Commands report failure by raising an
``ImapError`` that knows its own status (NO, BAD, BYE) and renders itself with the tag.
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

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


def refusal(state: State, name: str) -> Bad:
    """Why a command is not allowed here, in words a developer can act on."""
    if name in _NOT_AUTH:
        return Bad(f"{name} is not allowed: already authenticated")
    if state is State.NOT_AUTHENTICATED:
        return Bad(f"{name} needs a login first (LOGIN or AUTHENTICATE)")
    if name in _SELECTED:
        return Bad(f"{name} needs a selected mailbox (SELECT or EXAMINE first)")
    return Bad(f"{name} is not allowed in the {state.value} state")
