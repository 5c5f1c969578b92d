"""POP3 (RFC 1939): a sans-IO codec, a state-machine session, a thin asyncio server."""

from sandbox.pop3.backend import Maildrop, MaildropInUse, Pop3Backend, StorePop3Backend
from sandbox.pop3.server import Pop3Server, start_pop3_server
from sandbox.pop3.session import Pop3Session, Pop3Settings

__all__ = [
    "Maildrop",
    "MaildropInUse",
    "Pop3Backend",
    "Pop3Server",
    "Pop3Session",
    "Pop3Settings",
    "StorePop3Backend",
    "start_pop3_server",
]
