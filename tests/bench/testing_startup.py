"""Start-up and shut-down time of ``sandbox.testing.Sandbox`` and ``AsyncSandbox``.

Each run starts a sandbox with every listener on port 0 (SMTP, SMTPS, POP3, POP3S, IMAP,
IMAPS, DNS and one MX server per domain) and a fresh store, then stops it. A file store
in a new temporary folder (the default) makes a new CA and server certificate each time
(trustme); ``--data :memory:`` does too, in a private folder. Prints the median, p90 and
worst of each, and how much of the start the TLS files took.

    python tests/bench/testing_startup.py --runs 20
    python tests/bench/testing_startup.py --runs 20 --data :memory:
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import sandbox.runtime
from sandbox.testing import AsyncSandbox, Sandbox
from sandbox.tls import SandboxTLS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--data", default=None, help="':memory:' or leave unset (temp file)")
    args = parser.parse_args()
    tls_times = _time_tls()
    sync_start, sync_stop = [], []
    for _ in range(args.runs):
        started = time.perf_counter()
        box = Sandbox(data=args.data).start()
        sync_start.append(time.perf_counter() - started)
        started = time.perf_counter()
        box.close()
        sync_stop.append(time.perf_counter() - started)

    async def async_runs() -> tuple[list[float], list[float]]:
        starts, stops = [], []
        for _ in range(args.runs):
            started = time.perf_counter()
            box = await AsyncSandbox(data=args.data).start()
            starts.append(time.perf_counter() - started)
            started = time.perf_counter()
            await box.close()
            stops.append(time.perf_counter() - started)
        return starts, stops

    async_start, async_stop = asyncio.run(async_runs())
    print(f"runs: {args.runs}, data: {args.data or 'temporary file'}")
    for name, values in (
        ("Sandbox start", sync_start),
        ("Sandbox stop", sync_stop),
        ("AsyncSandbox start", async_start),
        ("AsyncSandbox stop", async_stop),
        ("  of which TLS files", tls_times),
    ):
        print(f"{name:22} {_stats(values)}")


def _time_tls() -> list[float]:
    """Wrap SandboxTLS.for_data to see how long making the CA and certificate takes."""
    times: list[float] = []
    original: Callable[..., Any] = SandboxTLS.for_data

    def timed(*args: Any, **kwargs: Any) -> SandboxTLS:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)  # type: ignore[no-any-return]
        finally:
            times.append(time.perf_counter() - started)

    sandbox.runtime.SandboxTLS.for_data = timed  # type: ignore[method-assign]
    return times


def _stats(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    return f"median {statistics.median(ms):6.1f} ms  p90 {p90:6.1f} ms  max {ms[-1]:6.1f} ms"


if __name__ == "__main__":
    main()
