"""The TUI over a big store: time to first paint, and a new message's way to the list.

Fills a data file with ``--messages`` messages (100,000 by default; ingested directly in
batches of NewMessage, no SMTP), then, ``--runs`` times each (medians printed):

- first paint: from creating the app (attached to the file) to the list showing rows
  (goal: under 1 s);
- new message → list: a Runtime in the app's own loop (``mail-sandbox up``), one message
  ingested through the one ingest path the SMTP servers use, until its row is in the
  list (goal: under 200 ms);
- flood: ``--flood`` messages a second for 3 s while the app runs: how many list
  refreshes that caused and the worst event-loop stall (the UI's responsiveness).

    python tests/bench/tui_scale.py                   # 100,000 messages, 3 runs
    python tests/bench/tui_scale.py --messages 20000 --keep /tmp/tui.sqlite3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sandbox.config import load_config
from sandbox.ingest import ingest
from sandbox.runtime import Runtime
from sandbox.store import Copy, NewMessage, SqliteStore
from sandbox.tui.app import SandboxApp, make_app

SIZE = (160, 48)
DOMAINS = ("alpha.test", "beta.test", "gamma.test")


def message(n: int, at: float) -> NewMessage:
    domain = DOMAINS[n % 3]
    to = f"user{n % 50}@{domain}"
    raw = (
        f"From: app{n % 7}@alpha.test\r\nTo: {to}\r\nSubject: message number {n}\r\n"
        f"Date: Tue, 02 Jan 2024 09:00:00 +0000\r\nMessage-ID: <{n}@bench>\r\n\r\n"
        f"Body of message {n}.\r\n"
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
    batch = 2000
    for start in range(have, count, batch):
        end = min(start + batch, count)
        await asyncio.gather(*(store.ingest(message(n, base + n)) for n in range(start, end)))
    await store.close()
    return time.perf_counter() - started


async def wait_rows(app: SandboxApp, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while True:
        if app.startup_error:
            raise RuntimeError(app.startup_error)
        try:
            if app.main.messages.row_count > 0:
                return
        except Exception:  # not composed yet
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("no rows")
        await asyncio.sleep(0.002)


async def first_paint(path: str) -> float:
    config = load_config(env={}, flags={"data": path})
    started = time.perf_counter()
    app = make_app(config)
    async with app.run_test(size=SIZE):
        await wait_rows(app)
        elapsed = time.perf_counter() - started
    return elapsed


def _port0(path: str) -> dict[str, object]:
    flags: dict[str, object] = {"data": path}
    for name in ("smtp", "smtps", "mx", "dns", "pop3", "pop3s", "imap", "imaps", "http"):
        flags[f"{name}.port"] = 0
    return flags


async def live(path: str, runs: int, flood: int) -> tuple[list[float], int, float]:
    runtime = Runtime(load_config(env={}, flags=_port0(path)))
    app = make_app(runtime.config, runtime=runtime)
    latencies: list[float] = []
    async with app.run_test(size=SIZE) as pilot:
        await wait_rows(app)
        await pilot.pause(0.5)
        table = app.main.messages
        for n in range(runs):
            await pilot.pause(0.5)  # a quiet spell, as between a developer's test runs
            before = max(table.rows_by_id)
            started = time.perf_counter()
            await ingest(runtime.store, message(10_000_000 + n, time.time()))
            while max(table.rows_by_id) == before:  # noqa: ASYNC110 (polling is the point)
                await asyncio.sleep(0.001)
            latencies.append(time.perf_counter() - started)
        # flood: `flood` messages a second for 3 s, measuring refreshes and loop stalls
        refreshes = 0
        original = table.sync

        async def counting() -> None:
            nonlocal refreshes
            refreshes += 1
            await original()

        table.sync = counting  # type: ignore[method-assign]
        worst = 0.0
        stop = False

        async def watch_loop() -> None:
            nonlocal worst
            while not stop:
                started = time.perf_counter()
                await asyncio.sleep(0.01)
                worst = max(worst, time.perf_counter() - started - 0.01)

        watcher = asyncio.get_running_loop().create_task(watch_loop())
        tick = 0.05
        per_tick = max(1, int(flood * tick))
        deadline = time.perf_counter() + 3.0
        n = 20_000_000
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await asyncio.gather(
                *(ingest(runtime.store, message(n + i, time.time())) for i in range(per_tick))
            )
            n += per_tick
            await asyncio.sleep(max(0.0, tick - (time.perf_counter() - started)))
        await pilot.pause(0.5)
        stop = True
        await watcher
    return latencies, refreshes, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--flood", type=int, default=1000, help="messages a second")
    parser.add_argument("--keep", metavar="PATH", help="data file to reuse (filled if short)")
    args = parser.parse_args()
    folder = tempfile.TemporaryDirectory()
    path = args.keep or str(Path(folder.name) / "bench.sqlite3")
    filled = asyncio.run(fill(path, args.messages))
    print(f"store: {args.messages:,} messages in {path} (filled in {filled:.1f} s)")
    paints = [asyncio.run(first_paint(path)) for _ in range(args.runs)]
    print(
        f"first paint: median {statistics.median(paints) * 1000:.0f} ms"
        f" (runs: {', '.join(f'{p * 1000:.0f}' for p in paints)} ms; goal < 1000 ms)"
    )
    latencies, refreshes, worst = asyncio.run(live(path, args.runs, args.flood))
    print(
        f"new message → list: median {statistics.median(latencies) * 1000:.1f} ms"
        f" (runs: {', '.join(f'{x * 1000:.1f}' for x in latencies)} ms; goal < 200 ms)"
    )
    print(
        f"flood of {args.flood} msg/s for 3 s: {refreshes} list refreshes"
        f" ({refreshes / 3.5:.1f}/s), worst event-loop stall {worst * 1000:.0f} ms"
    )
    folder.cleanup()


if __name__ == "__main__":
    main()
