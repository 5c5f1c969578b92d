"""The IMAP4rev1 endpoint: a sans-IO codec, sessions over the store, an asyncio server."""

from sandbox.imap.backend import ImapBackend
from sandbox.imap.server import ImapListener, start_imap_server
from sandbox.imap.session import ImapSettings

__all__ = ["ImapBackend", "ImapListener", "ImapSettings", "start_imap_server"]
