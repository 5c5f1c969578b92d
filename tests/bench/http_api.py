"""The HTTP API over a big store: latency of the Mailpit endpoints, throughput under
concurrent load while SMTP ingest goes on, and SMTP 250 → WebSocket ``new``.

Fills a data file with ``--messages`` messages (100,000 by default, through the store
directly, no SMTP), starts ``mail-sandbox serve`` on it (every listener on a free port),
then measures from this process with aiohttp:

- sequential medians and p99 of ``GET /api/v1/messages?limit=50``, ``GET /api/v1/search``
  (``subject:``) and ``GET /api/v1/message/{ID}`` (goal: list < 20 ms median);
- ``--clients`` concurrent clients for ``--seconds`` while a thread submits mail over
  SMTP, first mixing list and message, then all three: requests a second, median and p99
  (goal: 500 requests/s);
- from the 250 after DATA to the ``new`` event on ``/api/events`` (goal: < 50 ms median).

    python tests/bench/http_api.py                       # 100,000 messages
    python tests/bench/http_api.py --messages 20000 --keep /tmp/http.sqlite3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sandbox.store import Copy, NewMessage, SqliteStore

DOMAINS = ("alpha.test", "beta.test", "gamma.test")
FREE_PORTS = [
    arg
    for name in ("smtp", "smtps", "mx", "dns", "pop3", "pop3s", "imap", "imaps", "http")
    for arg in (f"--{name}-port", "0")
]


def message(n: int, at: float) -> NewMessage:
    to = f"user{n % 50}@{DOMAINS[n % 3]}"
    raw = (
        f"From: App <app{n % 7}@alpha.test>\r\nTo: {to}\r\nSubject: message number {n}\r\n"
        f"Date: Tue, 02 Jan 2024 09:00:00 +0000\r\nMessage-ID: <{n}@bench>\r\n\r\n"
        f"Body of message {n}, with a few words to make a snippet of.\r\n"
    ).encode()
    return NewMessage(
        raw=raw,
        envelope_from=f"app{n % 7}@alpha.test",
        envelope_to=(to,),
        source="bench",
        copies=(Copy(to),),
        received_at=at,
    )


async def fill(path: str, count: int) -> float:
    started = time.perf_counter()
    store = await SqliteStore.open(path)
    have = await store.count_messages()
    base = time.time() - count
    for start in range(have, count, 2000):
        end = min(start + 2000, count)
        await asyncio.gather(*(store.ingest(message(n, base + n)) for n in range(start, end)))
    await store.close()
    return time.perf_counter() - started


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"median {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"


async def timed(session: aiohttp.ClientSession, path: str) -> float:
    started = time.perf_counter()
    async with session.get(path) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"{path}: {response.status} {await response.text()}")
    return time.perf_counter() - started


def paths(count: int) -> dict[str, object]:
    return {
        "list": lambda: "/api/v1/messages?limit=50",
        "search": lambda: f'/api/v1/search?query=subject:"number {random.randrange(count)}"',
        "message": lambda: f"/api/v1/message/{random.randrange(1, count)}",
    }


async def sequential(base: str, count: int, n: int) -> None:
    async with aiohttp.ClientSession(base) as session:
        for name, make in paths(count).items():
            samples = [await timed(session, make()) for _ in range(n)]  # type: ignore[operator]
            print(f"  {name:8} sequential: {ms(samples)} ({n} requests)")


def smtp_load(address: tuple[str, int], stop: threading.Event, sent: list[int]) -> None:
    with smtplib.SMTP(*address) as smtp:
        n = 0
        while not stop.is_set():
            smtp.sendmail(
                "load@realcompany.com",
                ["larry@beta.test"],
                f"Subject: load {n}\r\n\r\nbody\r\n".encode(),
            )
            n += 1
        sent.append(n)


async def concurrent(
    base: str, count: int, clients: int, seconds: float, smtp: tuple[str, int], mix: list[str]
) -> None:
    stop = threading.Event()
    sent: list[int] = []
    loader = threading.Thread(target=smtp_load, args=(smtp, stop, sent))
    loader.start()
    samples: list[float] = []
    makers = [make for name, make in paths(count).items() if name in mix]
    deadline = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < deadline:
            samples.append(await timed(session, random.choice(makers)()))  # type: ignore[operator]

    connector = aiohttp.TCPConnector(limit=clients)
    started = time.perf_counter()
    async with aiohttp.ClientSession(base, connector=connector) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    elapsed = time.perf_counter() - started
    stop.set()
    loader.join()
    print(
        f"  {clients} clients for {seconds:g}s, {'/'.join(mix)}, SMTP ingest"
        f" {sent[0] / elapsed:.0f} msg/s beside: {len(samples) / elapsed:.0f} requests/s,"
        f" {ms(samples)}"
    )


async def event_latency(base: str, smtp: tuple[str, int], n: int) -> None:
    samples: list[float] = []
    async with aiohttp.ClientSession(base) as session, session.ws_connect("/api/events") as ws:
        with smtplib.SMTP(*smtp) as client:
            for i in range(n):
                subject = f"event probe {i} {time.time()}"
                await asyncio.to_thread(
                    client.sendmail,
                    "probe@realcompany.com",
                    ["larry@beta.test"],
                    f"Subject: {subject}\r\n\r\nprobe\r\n".encode(),
                )
                accepted = time.perf_counter()  # sendmail returns on the 250 after DATA
                while True:
                    event = json.loads((await ws.receive()).data)
                    if event["Type"] == "new" and event["Data"]["Subject"] == subject:
                        samples.append(time.perf_counter() - accepted)
                        break
    print(f"  SMTP 250 → WebSocket new: {ms(samples)} ({n} messages)")


async def measure(args: argparse.Namespace, ready: dict[str, Any]) -> None:
    base = "http://{}:{}".format(*ready["http"])
    smtp = (ready["smtp"][0], ready["smtp"][1])
    async with aiohttp.ClientSession(base) as session:  # warm the parse cache once
        await timed(session, "/api/v1/messages?limit=50")
    await sequential(base, args.messages, args.requests)
    for mix in (["list", "message"], ["list", "search", "message"]):
        await concurrent(base, args.messages, args.clients, args.seconds, smtp, mix)
    await event_latency(base, smtp, args.events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200, help="sequential, per endpoint")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--keep", help="data file to fill (and keep) instead of a temporary one")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="http-bench-")
    path = args.keep or str(Path(folder) / "bench.sqlite3")
    print(f"filling {args.messages:,} messages: {asyncio.run(fill(path, args.messages)):.1f} s")
    serve = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "serve", "--data", path, *FREE_PORTS],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert serve.stdout is not None
        asyncio.run(measure(args, json.loads(serve.stdout.readline())))
    finally:
        serve.terminate()
        serve.wait(30)


if __name__ == "__main__":
    main()
