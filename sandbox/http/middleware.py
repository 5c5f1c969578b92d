"""Every request passes here, the webmail's pages included.

``errors`` (outermost) turns every failure into ``{"Error": "..."}`` with the right
status — aiohttp's own 404/405/413 too — and never lets a traceback out. ``guard``
keeps a web page in the developer's browser from reading their mail: the ``Host`` must be
a name of this machine (DNS rebinding), an ``Origin``, when sent, must be this server's
own or one configured in ``[http] cors_origins`` (cross-site fetches and WebSockets), and
beyond loopback, or with ``[http] password``, every request needs credentials.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from sandbox.config import Config
from sandbox.http.errors import ApiError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
# Health checks answer without credentials, as Mailpit's do (container probes).
OPEN_PATHS = frozenset({"/livez", "/readyz"})
CORS_METHODS = "GET, POST, PUT, DELETE, OPTIONS"


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps({"Error": message}),
        content_type="application/json",
        headers=headers,
    )


def _aiohttp_message(request: web.Request, exc: web.HTTPException) -> str:
    """aiohttp's own refusals, said for a developer in a hurry."""
    if exc.status == 404:
        return f"no such path: {request.path}; the API is described at /api/v1/openapi.json"
    if exc.status == 405:
        allowed = exc.headers.get("Allow", "")
        return (
            f"{request.method} is not allowed on {request.path}; use {allowed or 'another method'}"
        )
    if exc.status == 413:
        return (
            "the request body is larger than the SMTP size limit"
            " (smtp.max_message_size); send a smaller message or raise the limit"
        )
    return exc.reason or exc.text or "request refused"


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return json_error(exc.status, exc.message, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "WWW-Authenticate")}
        return json_error(exc.status, _aiohttp_message(request, exc), headers)
    except (ConnectionResetError, TimeoutError) as exc:
        raise web.HTTPServiceUnavailable from exc
    except Exception:
        log.exception("HTTP %s %s failed", request.method, request.path)
        return json_error(500, "the sandbox failed to answer this request; its log has the details")


def _hostname(netloc: str) -> str:
    """``[::1]:8025`` → ``::1``; ``Localhost:8025`` → ``localhost``."""
    host = netloc.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class Guard:
    """Host, Origin and credential checks; CORS only for configured origins."""

    def __init__(self, config: Config) -> None:
        self.open_beyond_loopback = not _is_loopback(config.host)
        self.hosts = LOOPBACK_NAMES | {config.host.lower()}
        self.cors = frozenset(
            o.strip().rstrip("/").lower() for o in config.http.cors_origins.split(",") if o.strip()
        )
        self.password = config.http.password
        self.accounts = {a.address: a.password for a in config.accounts}
        # Beyond loopback only `allow_open` without accounts (refused at start otherwise)
        # leaves the API open, as it leaves every other listener.
        self.needs_credentials = bool(self.password) or (
            self.open_beyond_loopback and (bool(self.accounts) or not config.allow_open)
        )

    def host_allowed(self, host: str | None) -> bool:
        if host is None or self.open_beyond_loopback:
            return True  # beyond loopback every request carries credentials instead
        name = _hostname(host)
        return name in self.hosts or name.endswith(".localhost")

    def origin_allowed(self, origin: str, host: str | None) -> bool:
        if origin.rstrip("/").lower() in self.cors:
            return True
        parts = urlsplit(origin)
        return (
            parts.scheme in ("http", "https")
            and host is not None
            and parts.netloc.lower() == host.strip().lower()
        )

    def credentials_ok(self, header: str | None) -> bool:
        if not header or not header.lower().startswith("basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, _, password = decoded.partition(":")
        if self.password and secrets.compare_digest(password, self.password):
            return True
        expected = self.accounts.get(user.strip().lower())
        return expected is not None and secrets.compare_digest(password, expected)

    def middleware(self) -> Middleware:
        @web.middleware
        async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await self.check(request, handler)

        return guard

    async def check(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host")
        if not self.host_allowed(host):
            raise ApiError(
                403,
                f"refused: Host {host!r} is not this machine (a web page may be trying DNS"
                " rebinding); use http://127.0.0.1 or http://localhost",
            )
        origin = request.headers.get("Origin")
        if origin is not None and not self.origin_allowed(origin, host):
            raise ApiError(
                403,
                f"refused: requests from the web page at {origin} may not read this"
                " sandbox's mail; add it to [http] cors_origins to allow it",
            )
        cors = origin is not None and origin.rstrip("/").lower() in self.cors
        if cors and request.method == "OPTIONS":
            return web.Response(status=204, headers=self._cors_headers(origin or ""))
        if (
            self.needs_credentials
            and request.path not in OPEN_PATHS
            and not self.credentials_ok(request.headers.get("Authorization"))
        ):
            raise ApiError(
                401,
                "credentials needed: HTTP basic with an [accounts] address and password,"
                " or any user name with the [http] password",
                {"WWW-Authenticate": 'Basic realm="mail-sandbox"'},
            )
        response = await handler(request)
        if cors and not response.prepared:
            response.headers.update(self._cors_headers(origin or ""))
        return response

    def _cors_headers(self, origin: str) -> dict[str, str]:
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": CORS_METHODS,
            "Access-Control-Allow-Headers": "Authorization, Content-Type",
            "Access-Control-Allow-Credentials": "true",
            "Vary": "Origin",
        }
