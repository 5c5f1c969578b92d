"""What every handler shares: the runtime, the parse cache and small request helpers."""

from __future__ import annotations

import json
import os
import resource
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sandbox import __version__
from sandbox.config import MEMORY
from sandbox.http.errors import ApiError, bad_request, not_found
from sandbox.http.serialize import ParseCache, Parsed, message_summary
from sandbox.store import SqliteStore
from sandbox.store import http_views as views
from sandbox.store import tags as tag_store
from sandbox.store.http_views import SummaryRow

if TYPE_CHECKING:  # the runtime imports this package to start it
    from sandbox.runtime import Runtime


@dataclass
class Stats:
    """Counters of this process, for Mailpit's ``RuntimeStats``."""

    rejected: int = 0
    deleted: int = 0


@dataclass
class Api:
    runtime: Runtime
    cache: ParseCache = field(default_factory=ParseCache)
    stats: Stats = field(default_factory=Stats)
    version: str = __version__
    started: float = field(default_factory=time.monotonic)
    started_at: float = field(default_factory=time.time)
    # Totals and tags, until SQLite's data_version says some connection committed.
    _counts: tuple[int, tuple[int, int], list[str]] | None = None

    @property
    def store(self) -> SqliteStore:
        return self.runtime.store

    async def _cached(self) -> tuple[tuple[int, int], list[str]]:
        # In memory the reader is the writer, whose own commits data_version ignores.
        version = await views.data_version(self.store) if self.store.path != MEMORY else -1
        if self._counts is not None and version != -1 and self._counts[0] == version:
            return self._counts[1], self._counts[2]
        counts = await views.totals(self.store)
        names = list(await tag_store.all_tags(self.store))
        self._counts = (version, counts, names)
        return counts, names

    async def counts(self) -> tuple[int, int]:
        """(messages, unread) in the whole store."""
        return (await self._cached())[0]

    async def tag_names(self) -> list[str]:
        return (await self._cached())[1]

    async def accepted(self) -> tuple[int, int]:
        return await views.arrivals_since(self.store, self.started_at)

    def database_size(self) -> int:
        if self.store.path == MEMORY:
            return 0
        try:
            return os.path.getsize(self.store.path)
        except OSError:
            return 0

    @staticmethod
    def memory() -> int:
        """Peak resident memory in bytes (Linux reports kilobytes)."""
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024

    async def parsed(self, rows: list[SummaryRow]) -> list[Parsed]:
        """Parsed headers and bodies of these rows, reading only raw messages not cached."""
        missing = [r.message_id for r in rows if not self.cache.known(r.message_id)]
        raws = await views.raws(self.store, missing) if missing else {}
        result = []
        for row in rows:
            raw = raws.get(row.message_id)
            if raw is None and not self.cache.known(row.message_id):
                raw = await self.store.raw(row.message_id) or b""
            result.append(self.cache.get(row.message_id, raw or b""))
        return result

    async def summaries(self, rows: list[SummaryRow]) -> list[dict[str, Any]]:
        return [
            message_summary(row, parsed)
            for row, parsed in zip(rows, await self.parsed(rows), strict=True)
        ]

    async def row(self, ident: str) -> SummaryRow:
        """The copy an ``{ID}`` names: a number, or ``latest``."""
        if ident == "latest":
            latest = await views.latest_id(self.store)
            if latest is None:
                raise not_found("no messages stored yet")
            entry_id = latest
        else:
            entry_id = parse_id(ident)
        row = await views.summary(self.store, entry_id)
        if row is None:
            raise not_found(f"no message with ID {ident} (list them at /api/v1/messages)")
        return row


API_KEY = web.AppKey("api", Api)


def api(request: web.Request) -> Api:
    return request.app[API_KEY]


def parse_id(text: str) -> int:
    if not text.isdigit() or len(text) > 18:
        raise bad_request(f"{text!r} is not a message ID: IDs are numbers (or latest)")
    return int(text)


def int_param(request: web.Request, name: str, default: int, *, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise bad_request(f"{name} must be from {low} to {high}, got {value}")
    return value


async def json_body(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    """The request's JSON object (``{}`` for an empty optional body).

    A form-encoded body is read too (PyPI's mailpit-api-client sends its IDs that way):
    a repeated field becomes a list, ``true``/``false`` become booleans.
    """
    data = await request.read()
    if request.content_type == "application/x-www-form-urlencoded" and data.strip():
        return _form(await request.post())
    if not data.strip():
        if required:
            raise bad_request("this request needs a JSON body")
        return {}
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"the body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise bad_request("the body must be a JSON object")
    return value


def _form(fields: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key in set(fields.keys()):
        values = [_form_value(str(v)) for v in fields.getall(key)]
        result[key] = values if key.lower() == "ids" or len(values) > 1 else values[0]
    return result


def _form_value(value: str) -> Any:
    return {"true": True, "false": False}.get(value.lower(), value)


def ok_text() -> web.Response:
    """Mailpit answers changes with a plain ``ok``."""
    return web.Response(text="ok", content_type="text/plain")


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, ensure_ascii=False, default=str),
        status=status,
        content_type="application/json",
    )


def unavailable(what: str) -> ApiError:
    return ApiError(503, f"{what} is not running yet; try again in a moment")
