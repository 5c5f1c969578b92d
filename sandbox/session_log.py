"""The session log's entry for one IMAP or POP3 connection, kept by its asyncio adapter.

The adapter calls ``update`` after each command with what the session now is; an event is
published only when something the log shows changed (login, the selected folder, IDLE,
TLS), so a busy mail client costs nothing beyond its first commands. The runtime
journals the events like SMTP's, which is what the TUI and ``/api/v1/sessions`` read.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from dataclasses import replace

from sandbox.events import EventBus, MailSessionChanged

MAX_STEPS = 200  # steps kept per session; a long-lived webmail IDLEs thousands of times


class SessionLog:
    def __init__(
        self,
        bus: EventBus,
        record: type[MailSessionChanged],
        *,
        server: str,
        peer: str,
        tls: bool,
    ) -> None:
        self._bus = bus
        now = time.time()
        first = _step(now, "connected" + (" over TLS" if tls else ""))
        self._steps: deque[str] = deque([first], maxlen=MAX_STEPS)
        self._total = 1
        self._state = record(
            session_id=secrets.token_hex(8),
            server=server,
            peer=peer,
            user=None,
            tls=tls,
            started_at=now,
            open=True,
            steps=(first,),
            at=now,
        )
        bus.publish(self._state)

    def update(
        self, *, user: str | None, tls: bool, folder: str | None = None, idling: bool = False
    ) -> None:
        old = self._state
        if not old.open or (old.user, old.tls, old.folder, old.idling) == (
            user,
            tls,
            folder,
            idling,
        ):
            return
        now = time.time()
        said = []
        if tls and not old.tls:
            said.append("TLS started")
        if user != old.user:
            said.append(f"logged in as {user}" if user else "logged out")
        if folder != old.folder:
            said.append(f"selected {folder}" if folder else f"closed {old.folder}")
        if idling != old.idling:
            said.append("IDLE started" if idling else "IDLE done")
        self._publish(
            replace(old, user=user, tls=tls, folder=folder, idling=idling, at=now),
            [_step(now, text) for text in said],
        )

    def close(self) -> None:
        old = self._state
        if old.open:
            now = time.time()
            self._publish(
                replace(old, open=False, idling=False, at=now), [_step(now, "disconnected")]
            )

    def _publish(self, state: MailSessionChanged, said: list[str]) -> None:
        self._steps.extend(said)
        self._total += len(said)
        lost = self._total - len(self._steps)
        head = (f"… {lost} earlier steps not kept",) if lost else ()
        self._state = replace(state, steps=(*head, *self._steps))
        self._bus.publish(self._state)


def _step(at: float, text: str) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at * 1000) % 1000:03d} {text}"
