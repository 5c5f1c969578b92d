"""The TUI's search box: ``from:ann to:beta.test subject:"order 7" invoice`` into the
terms of a :class:`sandbox.store.tui_views.ListQuery` (no I/O; the SQL is in the store)."""

from __future__ import annotations


def parse_search(text: str) -> dict[str, str | None]:
    """``from:ann to:beta.test subject:"order 7" invoice`` → the fields; the rest is text."""
    terms: dict[str, str | None] = {}
    rest: list[str] = []
    for word in _split(text):
        key, sep, value = word.partition(":")
        if sep and key.lower() in ("from", "to", "subject") and value:
            terms[key.lower()] = value
        else:
            rest.append(word)
    terms["text"] = " ".join(rest) or None
    return terms


def _split(text: str) -> list[str]:
    words: list[str] = []
    current = ""
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif char.isspace() and not quoted:
            if current:
                words.append(current)
            current = ""
        else:
            current += char
    if current:
        words.append(current)
    return words
