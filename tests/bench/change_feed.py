"""Change-feed latency: a change committed in one process, seen by an IDLE client of another.

``mail-sandbox serve`` runs in its own process; an IMAP client IDLEs on a mailbox there.
This process opens the same data file and changes the mailbox ``--changes`` times through
the store (a flag toggle, as the attached TUI makes it; ``--kind store`` stores new
messages instead). Each figure is the time from the commit returning here to the
untagged response (``* n FETCH`` / ``* n EXISTS``) arriving at the IDLE client.
Goal: median < 50 ms, p99 < 250 ms.

    python tests/bench/change_feed.py --changes 200 [--kind flags|store]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sandbox.store import Copy, MessageFilter, NewMessage, SqliteStore  # noqa: E402

USER = "larry@beta.test"
PORT_FLAGS = [
    f"--{name}-port=0"
    for name in ("smtp", "smtps", "pop3", "pop3s", "imap", "imaps", "dns", "mx", "http")
]


def serve(data: Path) -> tuple[subprocess.Popen[str], dict[str, object]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAIL_SANDBOX_")}
    command = [sys.executable, "-m", "sandbox", "serve"]
    usage = subprocess.run([*command, "--help"], capture_output=True, text=True, env=env)
    extra = [flag for flag in ("--http-port=0",) if flag.split("=")[0] in usage.stdout]
    proc = subprocess.Popen(
        [*command, "--data", str(data), *PORT_FLAGS, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise SystemExit("serve did not start")
    return proc, json.loads(line)


class Idler:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""
        self.line()
        self.send(b"a LOGIN " + USER.encode() + b" x")
        self.until(rb"a OK.*")
        self.send(b"b SELECT INBOX")
        self.until(rb"b OK.*")
        self.send(b"c IDLE")
        self.until(rb"\+.*")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data + b"\r\n")

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                raise SystemExit("the IMAP server closed the connection")
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def until(self, pattern: bytes) -> bytes:
        while True:
            line = self.line()
            if re.fullmatch(pattern, line):
                return line


async def run(changes: int, kind: str) -> list[float]:
    folder = Path(tempfile.mkdtemp(prefix="feed-bench-"))
    data = folder / "feed.sqlite3"
    store = await SqliteStore.open(str(data), follow=False)

    def message(n: int) -> NewMessage:
        raw = f"From: a@alpha.test\r\nSubject: feed {n}\r\n\r\nx\r\n".encode()
        return NewMessage(raw, "a@alpha.test", (USER,), "bench", (Copy(USER),))

    await store.ingest(message(0))
    proc, ready = serve(data)
    try:
        port = int(ready["imap"][1])  # type: ignore[index]
        idler = await asyncio.to_thread(Idler, port)
        [record] = await store.list_messages(MessageFilter(to=USER))
        latencies = []
        for n in range(changes):
            if kind == "flags":
                pattern = rb"\* 1 FETCH .*"
                await store.set_seen([record.id], seen=n % 2 == 0)
            else:
                pattern = rb"\* %d EXISTS" % (n + 2)
                await store.ingest(message(n + 1))
            committed = time.perf_counter()
            await asyncio.to_thread(idler.until, pattern)
            latencies.append(time.perf_counter() - committed)
        return latencies
    finally:
        proc.terminate()
        proc.wait(10)
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--kind", choices=("flags", "store"), default="flags")
    args = parser.parse_args()
    latencies = asyncio.run(run(args.changes, args.kind))
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(
        json.dumps(
            {
                "changes": len(latencies),
                "kind": args.kind,
                "median_ms": round(statistics.median(latencies) * 1000, 1),
                "p99_ms": round(p99 * 1000, 1),
                "max_ms": round(ordered[-1] * 1000, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
