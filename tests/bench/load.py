"""Load benchmarks: many SMTP connections at once, IDLE sessions under a burst, memory.

    python tests/bench/load.py connections --connections 1000
    python tests/bench/load.py idle --sessions 100 --burst 50
    python tests/bench/load.py memory --messages 100000

The sandbox runs as `mail-sandbox serve` in its own process; this process is the client
(asyncio, so a thousand connections need no thousand threads).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from smtp_ingest import make_message, serve_argv, start, stop

failures: list[str] = []


async def smtp_client(
    port: int, index: int, hold: asyncio.Event, connected: list[int]
) -> tuple[bool, float]:
    """Connect, EHLO, wait until every client is connected, send one message, QUIT."""
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await _expect(reader, b"220")
        writer.write(b"EHLO load\r\n")
        await _expect(reader, b"250 ")
        connected.append(index)
        hold_started = time.perf_counter()
        await hold.wait()
        started += time.perf_counter() - hold_started
        body = make_message(index, 1024).replace(b"\r\n.", b"\r\n..")
        writer.write(
            b"MAIL FROM:<load@myapp.example>\r\nRCPT TO:<user%d@customers.example>\r\nDATA\r\n"
            % index
        )
        for code in (b"250", b"250", b"354"):
            await _expect(reader, code)
        writer.write(body + b".\r\nQUIT\r\n")
        await _expect(reader, b"250")
        writer.close()
        return True, time.perf_counter() - started
    except (OSError, ConnectionError, asyncio.IncompleteReadError, AssertionError) as exc:
        failures.append(f"{type(exc).__name__}: {str(exc)[:80]}")
        return False, time.perf_counter() - started


async def _expect(reader: asyncio.StreamReader, code: bytes) -> bytes:
    while True:
        async with asyncio.timeout(30):
            line = await reader.readline()
        if not line.startswith(code[:3]):
            raise AssertionError(line)
        if line[3:4] != b"-":
            return line


def connections(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        proc, ready = start(serve_argv(Path(tmp) / "load.sqlite3"))
        port = int(ready["smtp"][1])  # type: ignore[index]
        try:

            async def run() -> tuple[list[tuple[bool, float]], int]:
                hold = asyncio.Event()
                connected: list[int] = []
                tasks = [
                    asyncio.create_task(smtp_client(port, i, hold, connected)) for i in range(count)
                ]
                deadline = time.monotonic() + 60
                while len(connected) < count and time.monotonic() < deadline:
                    if all(t.done() for t in tasks):
                        break
                    await asyncio.sleep(0.05)
                at_once = len(connected)  # all of them hold an open session right now
                hold.set()
                return await asyncio.gather(*tasks), at_once

            began = time.perf_counter()
            results, at_once = asyncio.run(run())
            elapsed = time.perf_counter() - began
        finally:
            stop(proc)  # type: ignore[arg-type]
    ok = [seconds for good, seconds in results if good]
    if failures:
        print("failures:", sorted(set(failures))[:5])
    print(
        f"{count} SMTP connections, {at_once} open at once: {len(ok)} delivered,"
        f" {count - len(ok)} failed;"
        f" all done in {elapsed:.2f}s; per session median {statistics.median(ok) * 1000:.0f} ms,"
        f" max {max(ok) * 1000:.0f} ms"
    )


def idle(sessions: int, burst: int) -> None:
    import imaplib
    import smtplib
    import socket
    import threading

    with tempfile.TemporaryDirectory() as tmp:
        proc, ready = start(serve_argv(Path(tmp) / "idle.sqlite3"))
        host, port = ready["imap"]  # type: ignore[index]
        smtp_port = int(ready["smtp"][1])  # type: ignore[index]
        try:
            clients = []
            for _ in range(sessions):
                client = imaplib.IMAP4(host, port, timeout=60)
                client.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                client.login("larry@beta.test", "x")
                client.select("INBOX")
                client.send(b"i IDLE\r\n")
                assert client.readline().startswith(b"+ ")
                clients.append(client)
            seen: list[float] = []

            def watch(client: imaplib.IMAP4) -> None:
                while True:
                    line = client.readline()
                    if line.startswith(b"* %d EXISTS" % burst):
                        seen.append(time.perf_counter())
                        return

            watchers = [threading.Thread(target=watch, args=(c,), daemon=True) for c in clients]
            for w in watchers:
                w.start()
            began = time.perf_counter()
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=60) as smtp:
                for i in range(burst):
                    smtp.sendmail("a@alpha.test", ["larry@beta.test"], make_message(i, 2048))
            sent = time.perf_counter()
            for w in watchers:
                w.join(60)
        finally:
            stop(proc)  # type: ignore[arg-type]
    print(
        f"{sessions} IDLE sessions, burst of {burst} messages submitted in {sent - began:.2f}s:"
        f" {len(seen)} sessions saw all {burst}; the last one {max(seen) - began:.2f}s after"
        " the first submission"
    )


def memory(messages: int) -> None:
    import sqlite3

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "memory.sqlite3"
        fill = [sys.executable, "-c", _FILL, str(data), str(messages)]
        import subprocess

        subprocess.run(fill, check=True)
        with sqlite3.connect(data) as conn:
            stored = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
        proc, _ = start(serve_argv(data))
        try:
            time.sleep(2)  # settle: relay, chaos poller and journal running
            idle_rss = _rss(proc.pid)
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "sandbox",
                    "messages",
                    "--data",
                    str(data),
                    "--to",
                    "nobody@beta.test",
                ],
                check=True,
                capture_output=True,
            )
            busy_rss = _rss(proc.pid)
        finally:
            stop(proc)  # type: ignore[arg-type]
    print(
        json.dumps(
            {
                "messages_stored": stored,
                "rss_mb_after_start": round(idle_rss, 1),
                "rss_mb_after_a_listing": round(busy_rss, 1),
                "goal_mb": 200,
            }
        )
    )


def _rss(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


_FILL = """
import asyncio, sys, time
from sandbox.store import Copy, NewMessage, SqliteStore
sys.path.insert(0, "tests/bench")
from smtp_ingest import make_message

async def main(path, count):
    store = await SqliteStore.open(path)
    now = time.time()
    for start in range(0, count, 1000):
        await asyncio.gather(*(store.ingest(NewMessage(
            make_message(i, 2048), "app@myapp.example", (f"user{i % 100}@beta.test",), "bench",
            (Copy(f"user{i % 100}@beta.test"),), received_at=now - count + i))
            for i in range(start, min(count, start + 1000))))
    await store.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("connections")
    c.add_argument("--connections", type=int, default=1000)
    i = sub.add_parser("idle")
    i.add_argument("--sessions", type=int, default=100)
    i.add_argument("--burst", type=int, default=50)
    m = sub.add_parser("memory")
    m.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    if args.what == "connections":
        connections(args.connections)
    elif args.what == "idle":
        idle(args.sessions, args.burst)
    else:
        memory(args.messages)


if __name__ == "__main__":
    main()
