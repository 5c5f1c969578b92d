"""Start-up time of the CLI's read commands, beside `python -c pass` and a bare click command.

Every command runs as a user runs it (the installed ``mail-sandbox`` script, a new
process each time) against a sandbox started here on free ports with a few messages
stored, so ``dns`` and ``wait`` have something to answer. Runs are interleaved (one of
each command per round) so load on the machine hits all of them alike. Prints the median
and p90 wall time of each, and the median CPU time (user + system) of the process, which
other work on a shared machine disturbs far less, in milliseconds. Goal: every read
command's median under 150 ms.

    python tests/bench/cli_startup.py --runs 15
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sandbox.testing import Sandbox


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    script = str(Path(sys.executable).with_name("mail-sandbox"))
    with tempfile.TemporaryDirectory(prefix="mail-sandbox-bench-") as folder:
        data = str(Path(folder) / "bench.sqlite3")
        with Sandbox(data=data) as box:
            import smtplib

            with smtplib.SMTP(*box.smtp_address) as client:
                client.sendmail(
                    "a@alpha.test",
                    ["larry@beta.test"],
                    b"Subject: hi\r\n\r\nSee https://example.test/verify?a=1&amp;b=2\r\n",
                )
            first = box.wait_for(to="larry@beta.test")
            on = ["--data", data]
            commands: dict[str, list[str]] = {
                "python -c pass": [sys.executable, "-c", "pass"],
                "bare click command": [
                    sys.executable,
                    "-c",
                    "import click; click.command()(lambda: None)(args=[], standalone_mode=False)",
                ],
                "--version": [script, "--version"],
                "messages": [script, "messages", *on],
                "show": [script, "show", str(first.id), *on],
                "wait": [script, "wait", "--to", "larry@beta.test", *on],
                "links": [script, "links", str(first.id), *on],
                "queue": [script, "queue", *on],
                "dns": [script, "dns", "beta.test", "MX", *on],
                "chaos": [script, "chaos", *on],
                "config": [script, "config", *on],
                "ca": [script, "ca", *on],
            }
            times: dict[str, list[float]] = {name: [] for name in commands}
            cpu: dict[str, list[float]] = {name: [] for name in commands}
            for _ in range(args.runs):
                for name, argv in commands.items():
                    before = _children_cpu()
                    started = time.perf_counter()
                    subprocess.run(argv, check=True, capture_output=True)
                    times[name].append((time.perf_counter() - started) * 1000)
                    cpu[name].append((_children_cpu() - before) * 1000)
    print(f"runs: {args.runs} each, interleaved; milliseconds")
    print(f"{'command':<22}{'median':>8}{'p90':>8}{'cpu':>8}")
    for name, values in times.items():
        values.sort()
        p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
        print(
            f"{name:<22}{statistics.median(values):>8.0f}{p90:>8.0f}"
            f"{statistics.median(cpu[name]):>8.0f}"
        )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
