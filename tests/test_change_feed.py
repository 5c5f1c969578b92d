"""One truth across processes: changes made by another process reach IMAP sessions in serve.

An IDLE session hears of each change at once (RFC 2177); a plain SELECTed session at its
next command (RFC 3501 §7.4.1, §5.5). The other process is the CLI (``import``,
``clear``) or a script doing what the attached TUI and retention do through the store.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServeProcess, clean_env, cli

LARRY = "larry@beta.test"
WAIT = 5.0  # seconds a change may take before the test gives up (the bench measures it)


class RawImap:
    """A line-level IMAP client: imaplib has no IDLE before Python 3.14."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.buffer = b""
        self.tags = 0
        self.line()  # greeting

    def line(self, timeout: float = WAIT) -> bytes:
        self.sock.settimeout(timeout)
        while b"\r\n" not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def command(self, text: str) -> tuple[list[bytes], bytes]:
        self.tags += 1
        tag = b"t%d" % self.tags
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        untagged = []
        while True:
            line = self.line()
            if line.startswith(tag + b" "):
                return untagged, line
            untagged.append(line)

    def idle(self) -> None:
        self.sock.sendall(b"idle IDLE\r\n")
        assert self.line().startswith(b"+")

    def until(self, pattern: bytes) -> list[bytes]:
        """Untagged lines up to and including the first that matches (IDLE)."""
        seen = []
        deadline = time.monotonic() + WAIT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {pattern!r} within {WAIT} s; got {seen}")
            line = self.line(left)
            seen.append(line)
            if re.fullmatch(pattern, line):
                return seen

    def close(self) -> None:
        self.sock.close()


def eml(subject: str) -> bytes:
    return (
        f"From: app@alpha.test\r\nTo: {LARRY}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@test>\r\n\r\nbody\r\n"
    ).encode()


def run_store_script(data: Path, body: str) -> str:
    """What another process does through the store (the attached TUI, retention)."""
    script = (
        "import asyncio, sys\n"
        "from sandbox.store import SqliteStore, MessageFilter\n"
        "async def main():\n"
        "    store = await SqliteStore.open(sys.argv[1], follow=False)\n"
        "    try:\n" + "".join(f"        {line}\n" for line in body.splitlines()) + "    finally:\n"
        "        await store.close()\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(data)],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServeProcess]:
    proc = ServeProcess(tmp_path / "feed.sqlite3")
    try:
        yield proc
    finally:
        proc.stop()


def import_mail(served: ServeProcess, tmp_path: Path, *subjects: str) -> None:
    paths = []
    for subject in subjects:
        path = tmp_path / f"{subject}.eml"
        path.write_bytes(eml(subject))
        paths.append(str(path))
    done = cli("import", "--data", str(served.data), "--mailbox", LARRY, *paths)
    assert done.returncode == 0, done.stderr


def exists(lines: list[bytes]) -> int | None:
    found = [int(m.group(1)) for line in lines if (m := re.fullmatch(rb"\* (\d+) EXISTS", line))]
    return found[-1] if found else None


def expunged(lines: list[bytes]) -> list[int]:
    return [int(m.group(1)) for line in lines if (m := re.fullmatch(rb"\* (\d+) EXPUNGE", line))]


def test_idle_and_selected_sessions_see_every_other_process_change(
    served: ServeProcess, tmp_path: Path
) -> None:
    imap_port = served.ready["imap"][1]
    import_mail(served, tmp_path, "one", "two", "three")
    idler, selected = RawImap(imap_port), RawImap(imap_port)
    try:
        for client in (idler, selected):
            client.command(f"LOGIN {LARRY} x")
            untagged, done = client.command("SELECT INBOX")
            assert done.endswith(b"OK [READ-WRITE] SELECT completed")
            assert exists(untagged) == 3
        idler.idle()

        # import (CLI): two new messages.
        import_mail(served, tmp_path, "four", "five")
        assert exists(idler.until(rb"\* 5 EXISTS")) == 5
        untagged, done = selected.command("NOOP")
        assert done.endswith(b"OK NOOP completed") and exists(untagged) == 5

        # A TUI delete: the attached TUI deletes a copy through the store in its process.
        run_store_script(
            served.data,
            "rows = await store.list_messages(MessageFilter(to='larry@beta.test',"
            " subject='two'))\nawait store.delete_entries([rows[0].id])",
        )
        assert idler.until(rb"\* 2 EXPUNGE")[-1] == b"* 2 EXPUNGE"
        untagged, _ = selected.command("NOOP")
        assert expunged(untagged) == [2]

        # A TUI flag change: the other session is told the new flags (§7.4.2).
        run_store_script(
            served.data,
            "rows = await store.list_messages(MessageFilter(subject='one'))\n"
            "await store.set_seen([rows[0].id], True)",
        )
        assert b"\\Seen" in idler.until(rb"\* 1 FETCH \(UID 1 FLAGS \(.*\)\)")[-1]
        untagged, _ = selected.command("NOOP")
        assert any(line.startswith(b"* 1 FETCH (UID 1 FLAGS (\\Seen") for line in untagged)

        # Retention in another process prunes the oldest messages (counts only on the bus).
        run_store_script(
            served.data, "print(await store.prune(max_messages=2, max_age=0, grace=0))"
        )
        # Four left (one, three, four, five); the two oldest go: one and three.
        # Highest first: each EXPUNGE renumbers only the messages after it (§7.4.1).
        assert expunged(idler.until(rb"\* 1 EXPUNGE")) == [2, 1]
        untagged, _ = selected.command("NOOP")
        assert expunged(untagged) == [2, 1]
        _, done = selected.command("FETCH 1:2 (UID)")
        assert done.endswith(b"OK FETCH completed")

        # clear (CLI): everything goes.
        done_clear = cli("clear", "--data", str(served.data))
        assert done_clear.returncode == 0, done_clear.stderr
        assert expunged(idler.until(rb"\* 1 EXPUNGE")) == [2, 1]
        untagged, _ = selected.command("NOOP")
        assert expunged(untagged) == [2, 1]
        untagged, done = selected.command("UID FETCH 1:* (FLAGS)")
        assert done.endswith(b"OK FETCH completed") and untagged == []
    finally:
        idler.close()
        selected.close()


def test_fetch_of_a_message_deleted_meanwhile_is_no_not_an_empty_ok(
    served: ServeProcess, tmp_path: Path
) -> None:
    """RFC 2180 §4.1.3: a FETCH of a message another process removed answers NO."""
    imap_port = served.ready["imap"][1]
    import_mail(served, tmp_path, "only")
    client = RawImap(imap_port)
    try:
        client.command(f"LOGIN {LARRY} x")
        client.command("SELECT INBOX")
        # Whether or not the feed has told the session yet, the EXPUNGE may not be sent
        # during FETCH (§7.4.1): sequence number 1 still names the deleted copy.
        run_store_script(
            served.data,
            "rows = await store.list_messages(MessageFilter(subject='only'))\n"
            "await store.delete_entries([rows[0].id])",
        )
        untagged, done = client.command("FETCH 1 (BODY.PEEK[])")
        assert done.startswith(b"t3 NO [EXPUNGEISSUED]"), done
        assert untagged == []
        untagged, _ = client.command("NOOP")
        assert expunged(untagged) == [1]
    finally:
        client.close()
