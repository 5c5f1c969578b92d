"""The data file's permissions: owner-only, like a real mail spool.

The data file holds every message and password-like secret a test sends, and its folder
holds the TLS keys. SQLite creates the ``-wal`` and ``-shm`` files with the database
file's own mode, so making the database file 0600 before SQLite first opens it covers
all three, whatever the umask.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sandbox.config import MEMORY
from sandbox.store import StoreError

FILE_MODE = 0o600
FOLDER_MODE = 0o700
_SIDE_FILES = ("", "-wal", "-shm", "-journal")


def prepare_data_file(path: str) -> None:
    """Create the folder (0700) and the file (0600) if missing; tighten ours if too open."""
    if path == MEMORY:
        return
    file = Path(path).expanduser()
    try:
        if not file.parent.exists():
            file.parent.mkdir(mode=FOLDER_MODE, parents=True)
        fd = os.open(file, os.O_WRONLY | os.O_CREAT, FILE_MODE)
        os.close(fd)
        for suffix in _SIDE_FILES:
            _tighten(file.with_name(file.name + suffix))
    except OSError as exc:
        raise StoreError(
            f"cannot prepare the data file {path}: {exc.strerror or exc};"
            " check the folder's permissions or pass another --data"
        ) from None


def _tighten(path: Path) -> None:
    """Owner-only, if another user could read or write it (older sandboxes made it 0644)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        os.chmod(path, mode & ~(stat.S_IRWXG | stat.S_IRWXO))
