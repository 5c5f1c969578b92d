"""SMTP ingest benchmark: the sandbox against a bare aiosmtpd handler, in the same run.

Both servers run in their own process; this process is only the client: K threads, each
reusing one smtplib connection, send N messages of S bytes. The sandbox's figure counts
only messages verified in its store afterwards. Recipients are at a domain outside the
sandbox (held, one copy each), so this measures the submission path alone; the relay has
its own benchmark (relay.py).

    python tests/bench/smtp_ingest.py --messages 2000 --size 2048 --connections 10 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import smtplib
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RCPT_DOMAIN = "customers.example"  # not a sandbox domain: held, never relayed


def bare_server() -> None:
    """A bare aiosmtpd handler that only appends to a list: the yardstick."""
    from aiosmtpd.smtp import SMTP

    received: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            received.append(envelope.original_content)  # type: ignore[attr-defined]
            return "250 OK"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(Handler(), hostname="bare", loop=loop), "127.0.0.1", 0
        )
        print(json.dumps({"smtp": server.sockets[0].getsockname()[:2]}), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def make_message(index: int, size: int) -> bytes:
    head = (
        f"From: App <noreply@myapp.example>\r\nTo: user{index % 50}@{RCPT_DOMAIN}\r\n"
        f"Subject: message {index}\r\nDate: Mon, 23 Nov 2026 12:00:00 +0000\r\n"
        f"Message-ID: <{index}@myapp.example>\r\n\r\n"
    ).encode()
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n"
    body = (line * (size // len(line) + 1))[: max(0, size - len(head) - 2)]
    return head + body + b"\r\n"


def send_all(port: int, messages: int, size: int, connections: int) -> float:
    """Send everything; return the seconds from first connect to last 250."""
    payloads = [make_message(i, size) for i in range(messages)]
    errors: list[BaseException] = []
    start = threading.Barrier(connections + 1)

    def worker(offset: int) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
                client.ehlo("bench")
                start.wait()
                for i in range(offset, messages, connections):
                    client.sendmail(
                        "noreply@myapp.example", [f"user{i % 50}@{RCPT_DOMAIN}"], payloads[i]
                    )
        except BaseException as exc:  # reported below; a benchmark with errors is void
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(connections)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise SystemExit(f"client errors: {errors[:3]}")
    return elapsed


def start(argv: list[str]) -> tuple[subprocess.Popen[str], dict[str, object]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAIL_SANDBOX_")}
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT, env=env
    )
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(10)


def run_once(messages: int, size: int, connections: int) -> tuple[float, float]:
    proc, ready = start([sys.executable, __file__, "--bare-server"])
    try:
        port = int(ready["smtp"][1])  # type: ignore[index]
        bare = messages / send_all(port, messages, size, connections)
    finally:
        stop(proc)
    return bare, sandbox_rate(messages, size, connections)


def sandbox_rate(messages: int, size: int, connections: int) -> float:
    """mail-sandbox's ingest rate, every message verified in SQLite afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "bench.sqlite3"
        proc, ready = start(serve_argv(data))
        try:
            seconds = send_all(int(ready["smtp"][1]), messages, size, connections)  # type: ignore[index]
        finally:
            stop(proc)
        with sqlite3.connect(data) as conn:
            stored = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
        if stored != messages:
            raise SystemExit(f"only {stored} of {messages} messages were stored")
        return messages / seconds


def serve_argv(data: Path, *extra: str) -> list[str]:
    """`mail-sandbox serve` with every listener on a free port, so benchmarks never collide."""
    names = ("smtp", "smtps", "mx", "dns", "pop3", "pop3s", "imap", "imaps", "http")
    flags = [arg for name in names for arg in (f"--{name}-port", "0")]
    return [sys.executable, "-m", "sandbox", "serve", "--data", str(data), *flags, *extra]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=2048, help="bytes per message")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        bare_server()
        return
    print(
        f"{args.messages} messages of {args.size} B over {args.connections} connections,"
        f" {args.runs} runs (server processes separate from this client)"
    )
    bares, sandboxes = [], []
    for run in range(args.runs):
        bare, sandbox = run_once(args.messages, args.size, args.connections)
        bares.append(bare)
        sandboxes.append(sandbox)
        print(
            f"run {run + 1}: bare aiosmtpd {bare:7.0f} msg/s   mail-sandbox {sandbox:7.0f} msg/s"
            f"   ratio {sandbox / bare:.2f}"
        )
    bare_m, sandbox_m = statistics.median(bares), statistics.median(sandboxes)
    print(
        f"median: bare aiosmtpd {bare_m:.0f} msg/s, mail-sandbox {sandbox_m:.0f} msg/s"
        f" (every message verified in SQLite), ratio {sandbox_m / bare_m:.2f} (target >= 0.6)"
    )


if __name__ == "__main__":
    main()
