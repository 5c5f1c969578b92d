"""The single source of truth: messages, mailboxes, folders, journeys and the journal."""

from sandbox.store.models import (
    INBOX,
    SEEN,
    SENT,
    TRASH,
    Copy,
    Hop,
    MessageFilter,
    MessageRecord,
    NewMessage,
    StoredCopy,
    StoredMessage,
    domain_of,
    normalize_address,
)
from sandbox.store.sqlite import SqliteStore, StoreError

__all__ = [
    "INBOX",
    "SEEN",
    "SENT",
    "TRASH",
    "Copy",
    "Hop",
    "MessageFilter",
    "MessageRecord",
    "NewMessage",
    "SqliteStore",
    "StoreError",
    "StoredCopy",
    "StoredMessage",
    "domain_of",
    "normalize_address",
]
