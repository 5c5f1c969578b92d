"""Relay benchmark: alpha.test → beta.test through the DNS stub and beta's MX server.

Latency: messages submitted at a steady rate on one connection; for each, the time from
the submission server's 250 to the copy committed in beta.test's mailbox (the child
message's arrival time in SQLite, same clock). Pipeline throughput: N messages submitted
as fast as K connections go, timed until the last copy is stored at beta.test (the one
process does the submission, the relay and beta's MX server). Relay throughput: N
deliveries already queued (beta.test temp-failing, then switched back with `chaos off`
and `queue --retry-now`), timed from the first copy stored to the last: the relay and
the MX server alone. The sandbox runs in its own process; this process is the client.

    python tests/bench/relay.py --rate 50 --seconds 10 --messages 2000 --connections 10 --runs 3
"""

from __future__ import annotations

import argparse
import smtplib
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from smtp_ingest import make_message, sandbox_rate, serve_argv, start, stop

SENDER = "app@alpha.test"


def serve(data: Path) -> tuple[object, int]:
    proc, ready = start(serve_argv(data))
    return proc, int(ready["smtp"][1])  # type: ignore[index]


def stored_at_beta(data: Path) -> dict[str, float]:
    """queue id of the submission → when its copy was stored at beta.test."""
    with sqlite3.connect(data) as conn:
        rows = conn.execute(
            "SELECT p.queue_id, c.received_at FROM messages c JOIN messages p ON p.id = c.parent_id"
            " WHERE c.source = 'mx:beta.test'"
        ).fetchall()
    return {queue_id: at for queue_id, at in rows}


def latency(rate: float, seconds: float) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "relay.sqlite3"
        proc, port = serve(data)
        sent: dict[str, float] = {}
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                client.ehlo("bench")
                interval = 1.0 / rate
                next_at = time.perf_counter()
                for i in range(int(rate * seconds)):
                    time.sleep(max(0.0, next_at - time.perf_counter()))
                    next_at += interval
                    client.mail(SENDER)
                    client.rcpt(f"user{i % 50}@beta.test")
                    _, reply = client.data(make_message(i, 2048))
                    sent[reply.decode().split()[-1]] = time.time()
            deadline = time.time() + 30
            while len(stored := stored_at_beta(data)) < len(sent) and time.time() < deadline:
                time.sleep(0.1)
        finally:
            stop(proc)  # type: ignore[arg-type]
    missing = len(sent) - len(stored)
    if missing:
        raise SystemExit(f"{missing} relayed messages never arrived at beta.test")
    return sorted((stored[q] - t) * 1000 for q, t in sent.items())


def throughput(messages: int, connections: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "relay.sqlite3"
        proc, port = serve(data)
        try:
            began = time.time()
            threads = [
                threading.Thread(target=_sender, args=(port, k, messages, connections))
                for k in range(connections)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            deadline = time.time() + 120
            while len(stored := stored_at_beta(data)) < messages and time.time() < deadline:
                time.sleep(0.05)
        finally:
            stop(proc)  # type: ignore[arg-type]
    if len(stored) < messages:
        raise SystemExit(f"only {len(stored)} of {messages} relayed messages arrived")
    return messages / (max(stored.values()) - began)


def drain(messages: int, connections: int) -> float:
    """Deliveries per second once they are all queued: the relay's own rate."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "relay.sqlite3"
        config = Path(tmp) / "sandbox.toml"
        config.write_text(
            '[relay]\nretry_schedule = [3600]\n[domains."alpha.test"]\n'
            '[domains."beta.test"]\nchaos = { mode = "tempfail" }\n'
        )
        proc, ready = start(serve_argv(data, "--config", str(config)))
        port = int(ready["smtp"][1])  # type: ignore[index]
        try:
            threads = [
                threading.Thread(target=_sender, args=(port, k, messages, connections))
                for k in range(connections)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            while _attempted(data) < messages:
                time.sleep(0.1)
            cli = [sys.executable, "-m", "sandbox", "--config", str(config), "--data", str(data)]
            subprocess.run([*cli, "chaos", "beta.test", "off"], check=True, capture_output=True)
            time.sleep(1.0)  # the server looks at chaos settings every half second
            subprocess.run([*cli, "queue", "--retry-now"], check=True, capture_output=True)
            deadline = time.time() + 120
            while len(stored := stored_at_beta(data)) < messages and time.time() < deadline:
                time.sleep(0.05)
        finally:
            stop(proc)  # type: ignore[arg-type]
    if len(stored) < messages:
        raise SystemExit(f"only {len(stored)} of {messages} queued messages were relayed")
    times = sorted(stored.values())
    return (messages - 1) / (times[-1] - times[0])


def _attempted(data: Path) -> int:
    with sqlite3.connect(data) as conn:
        return int(conn.execute("SELECT count(*) FROM deliveries WHERE attempts > 0").fetchone()[0])


def _sender(port: int, offset: int, messages: int, connections: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.ehlo("bench")
        for i in range(offset, messages, connections):
            client.sendmail(SENDER, [f"user{i % 50}@beta.test"], make_message(i, 2048))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="messages/s for latency")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--messages", type=int, default=2000, help="for throughput")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(
        f"latency: {args.rate:g} msg/s for {args.seconds:g}s; throughput: {args.messages}"
        f" messages over {args.connections} connections; 2 KB each; {args.runs} runs"
    )
    medians, p99s, rates, drains, ingests = [], [], [], [], []
    for run in range(args.runs):
        ms = latency(args.rate, args.seconds)
        median, p99 = statistics.median(ms), ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        rate = throughput(args.messages, args.connections)
        drained = drain(args.messages, args.connections)
        ingest = sandbox_rate(args.messages, 2048, args.connections)
        ingests.append(ingest)
        medians.append(median)
        p99s.append(p99)
        rates.append(rate)
        drains.append(drained)
        print(
            f"run {run + 1}: 250 → stored at beta.test median {median:.1f} ms, p99 {p99:.1f} ms;"
            f" pipeline {rate:.0f} msg/s; relay (queue drain) {drained:.0f} msg/s;"
            f" ingest {ingest:.0f} msg/s"
        )
    print(
        f"median of runs: latency median {statistics.median(medians):.1f} ms (goal < 10 ms),"
        f" p99 {statistics.median(p99s):.1f} ms; pipeline (submit + relay + MX)"
        f" {statistics.median(rates):.0f} msg/s; relay alone {statistics.median(drains):.0f} msg/s"
        f" = {statistics.median(drains) / statistics.median(ingests):.2f} x the ingest rate"
        f" measured in the same runs ({statistics.median(ingests):.0f} msg/s; goal >= 0.5)"
    )


if __name__ == "__main__":
    main()
