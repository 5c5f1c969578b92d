"""Mailpit's search syntax, parsed without I/O into a store filter.

``from:ann to:beta.test subject:"order 7" -is:read has:attachment larger:1M
after:2026-01-31 invoice "exact phrase"``: every term must hold; ``-`` (or ``!``) in
front negates one; a quoted value may hold spaces (``\\"`` for a quote inside); a word
that is not ``key:value`` with a known key searches sender, recipients, subject and the
raw source. Dates are ``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM[:SS][±HH:MM|Z]`` or unix
seconds, in UTC unless a zone is given (Mailpit's ``tz`` parameter, ``zone()``). Sizes
are bytes with an optional unit (K, M, G in powers of 1000; KiB, MiB, GiB in powers of
1024), as Mailpit reads them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sandbox.store.http_views import SearchFilter, Term

TEXT_KEYS = ("to", "from", "cc", "bcc", "subject", "message-id", "tag")
KEYS = (*TEXT_KEYS, "is", "has", "after", "before", "larger", "smaller")
IS_VALUES = ("read", "unread", "tagged")
HAS_VALUES = ("attachment", "attachments")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3}


class SearchError(ValueError):
    """A search the sandbox cannot run; the message says which term and what to write."""


def _words(text: str) -> list[tuple[bool, str, bool]]:
    """(negated, token, phrase) triples; a quote runs to the next unescaped quote, and a
    token that starts with one is a phrase."""
    words: list[tuple[bool, str, bool]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        negated = False
        if text[i] in "-!" and i + 1 < n and not text[i + 1].isspace():
            negated, i = True, i + 1
        token: list[str] = []
        quoted = i < n and text[i] == '"'  # a phrase: never key:value
        while i < n and not text[i].isspace():
            if text[i] == '"':
                i += 1
                while i < n and text[i] != '"':
                    if text[i] == "\\" and i + 1 < n and text[i + 1] in '"\\':
                        i += 1
                    token.append(text[i])
                    i += 1
                i += 1  # the closing quote (or the end: an unclosed quote runs to it)
            else:
                token.append(text[i])
                i += 1
        words.append((negated, "".join(token), quoted))
    return words


def zone(name: str | None) -> tzinfo:
    """The IANA time zone a ``tz`` parameter names (UTC when absent)."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SearchError(f"tz={name!r} is not a time zone; use a name like Europe/Paris") from None


def parse_search(text: str, tz: tzinfo = UTC) -> SearchFilter:
    """The filter a search means; ``SearchError`` for a value that cannot be read.
    Dates without a zone of their own are read in ``tz``."""
    terms: list[Term] = []
    for negated, token, phrase in _words(text):
        key, sep, value = token.partition(":")
        key = key.lower()
        if phrase or not sep or key not in KEYS:
            if token:
                terms.append(Term("text", token, negated))
            continue
        if not value:
            if key in TEXT_KEYS:
                continue  # Mailpit ignores an empty filter such as "to:"
            raise SearchError(f"{key}: needs a value, for example {_example(key)}")
        terms.append(Term(key, _value(key, value, tz), negated))
    return SearchFilter(tuple(terms))


def _example(key: str) -> str:
    return {
        "is": "is:read, is:unread or is:tagged",
        "has": "has:attachment",
        "after": "after:2026-01-31",
        "before": "before:2026-01-31",
        "larger": "larger:1M",
        "smaller": "smaller:500K",
    }[key]


def _value(key: str, value: str, tz: tzinfo) -> str | float | int:
    if key in TEXT_KEYS:
        return value
    lowered = value.lower()
    if key == "is":
        if lowered not in IS_VALUES:
            raise SearchError(f"is:{value} is not a filter; use {_example(key)}")
        return lowered
    if key == "has":
        if lowered not in HAS_VALUES:
            raise SearchError(f"has:{value} is not a filter; use has:attachment")
        return "attachment"
    if key in ("after", "before"):
        return parse_date(key, value, tz)
    return parse_size(key, value)


def parse_date(key: str, value: str, tz: tzinfo = UTC) -> float:
    """A unix time from a date, a date and time, or unix seconds (in ``tz`` unless the
    value names its own zone)."""
    if value.isdigit() and len(value) > 8:
        return float(value)
    text = value.upper().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise SearchError(f"{key}:{value} is not a date; use {_example(key)}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.timestamp()


def parse_size(key: str, value: str) -> int:
    match = _SIZE.match(value.strip())
    if match is None:
        raise SearchError(f"{key}:{value} is not a size; use {_example(key)}")
    number, unit = float(match.group(1)), (match.group(2) or "").lower()
    base = 1024 if "i" in unit else 1000
    power = {"": 0, "b": 0, "k": 1, "m": 2, "g": 3}[unit[:1] if unit != "b" else "b"]
    return int(number * (base**power))


def render(flt: SearchFilter) -> str:
    """A search text that parses back to the same filter (for tests and error messages)."""
    out: list[str] = []
    for term in flt.terms:
        prefix = "-" if term.negated else ""
        if term.field == "text":
            out.append(prefix + _quote(str(term.value)))
        elif term.field in ("after", "before"):
            when = datetime.fromtimestamp(float(term.value), UTC).isoformat()
            out.append(f"{prefix}{term.field}:{when}")
        else:
            out.append(f"{prefix}{term.field}:{_quote(str(term.value))}")
    return " ".join(out)


def _quote(value: str) -> str:
    plain = not any(c.isspace() or c in '"\\:' for c in value)
    if value and plain and value[0] not in "-!":
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
