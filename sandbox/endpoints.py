"""The endpoints file: how a command finds the sandbox running on a data file.

A running sandbox writes its ready line (the JSON object ``serve`` prints) to
``DATA.endpoints.json`` beside its data file once every listener is up, and removes it
when it stops. Commands given that data file read it for the ports, so ``mail-sandbox
send --data other.db`` reaches the sandbox on other.db even when it took free ports.
The dict is open-ended: whatever keys the ready line has, the file has.

A sandbox killed with SIGKILL leaves the file behind; a command that then finds nothing
listening says so (``unreachable``). Light: read commands import this.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from sandbox.config import MEMORY

SUFFIX = ".endpoints.json"


def endpoints_path(data: str) -> Path | None:
    """``DATA.endpoints.json`` beside the data file; None for an in-memory store."""
    if data == MEMORY:
        return None
    path = Path(data).expanduser()
    return path.with_name(path.name + SUFFIX)


def write_endpoints(data: str, ready: dict[str, Any]) -> Path | None:
    """Record ``ready`` atomically (a reader never sees half a file)."""
    path = endpoints_path(data)
    if path is None:
        return None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(ready) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def remove_endpoints(data: str, ready: dict[str, Any]) -> None:
    """Remove the file if it is still ours (a second sandbox may have replaced it)."""
    if read_endpoints(data) == ready:
        path = endpoints_path(data)
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def read_endpoints(data: str) -> dict[str, Any] | None:
    """The ready line of the sandbox running on ``data``, or None if none recorded one."""
    path = endpoints_path(data)
    if path is None:
        return None
    try:
        ready = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return ready if isinstance(ready, dict) else None


def address(ready: dict[str, Any], name: str) -> tuple[str, int] | None:
    """``ready[name]`` as (host, port), if the sandbox has that listener."""
    value = ready.get(name)
    if isinstance(value, list | tuple) and len(value) == 2:
        host, port = value
        if isinstance(host, str) and isinstance(port, int):
            return host, port
    return None


def not_running(data: str) -> str:
    """What to say when no sandbox recorded its endpoints for ``data``."""
    return (
        f"no sandbox is running on {data} (it writes {Path(data).name}{SUFFIX} beside the"
        f" data file while it runs); start one with: mail-sandbox serve --data {data}"
    )


def unreachable(data: str, name: str, where: tuple[str, int]) -> str:
    """What to say when the recorded listener does not answer (the sandbox was killed)."""
    host, port = where
    return (
        f"nothing answers on {host}:{port}, where the sandbox on {data} said its {name}"
        f" listens: it has stopped; start it again with: mail-sandbox serve --data {data}"
    )
