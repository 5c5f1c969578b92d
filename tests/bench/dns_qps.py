"""Queries per second of the fake_dns stub over UDP.

Starts ``python -m fake_dns`` in its own process (``--port 0 --quiet``, reads the ready
line), then runs ``--clients`` asyncio UDP clients in this process, each keeping
``--inflight`` queries outstanding (prebuilt MX/A queries, only the ID patched, replies
matched by ID), so the client side costs little and the server is what is measured.
Prints the parameters, queries/second, median and p99 latency, and lost queries.

    python tests/bench/dns_qps.py --seconds 5 --clients 8
    python tests/bench/dns_qps.py --seconds 5 --profile /tmp/dns.prof   # cProfile the server
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import dns.edns
import dns.message

DOMAINS = ("alpha.test=127.0.0.11", "beta.test=127.0.0.12", "gamma.test=127.0.0.13")
QUESTIONS = (
    ("beta.test", "MX"),
    ("mx.beta.test", "A"),
    ("alpha.test", "MX"),
    ("mx.alpha.test", "A"),
    ("gamma.test", "MX"),
    ("mx.gamma.test", "A"),
)
RESEND_AFTER = 1.0  # seconds without a reply: count as lost, send another


def _queries(edns: bool, cold: bool) -> list[bytes]:
    wires = []
    for name, rdtype in QUESTIONS:
        if cold:  # an EDNS cookie (RFC 7873) whose last 8 bytes the client randomises
            cookie = dns.edns.CookieOption(bytes(8), b"")
            query = dns.message.make_query(name, rdtype, use_edns=0, options=[cookie])
        else:
            query = dns.message.make_query(name, rdtype, use_edns=0 if edns else False)
        wires.append(query.to_wire()[2:])  # without the ID
    return wires


class _Client(asyncio.DatagramProtocol):
    """Keeps ``inflight`` queries outstanding; records a latency per reply."""

    def __init__(self, wires: list[bytes], inflight: int, offset: int, cold: bool) -> None:
        self.wires = wires
        self.cold = cold
        self.inflight = inflight
        self.next_id = offset * 4096
        self.pending: dict[int, float] = {}
        self.latencies: list[float] = []
        self.recording = False
        self.lost = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        for _ in range(self.inflight):
            self.send()

    def send(self) -> None:
        assert self.transport is not None
        query_id = self.next_id = (self.next_id + 1) & 0xFFFF
        wire = self.wires[query_id % len(self.wires)]
        if self.cold:  # every query unique: the server's rendered-reply cache never hits
            wire = wire[:-8] + os.urandom(8)
        self.pending[query_id] = time.perf_counter()
        self.transport.sendto(query_id.to_bytes(2, "big") + wire)

    def datagram_received(self, data: bytes, addr: object) -> None:
        sent = self.pending.pop(int.from_bytes(data[:2], "big"), None)
        if sent is None:
            return
        if self.recording:
            self.latencies.append(time.perf_counter() - sent)
        self.send()

    def resend_stale(self) -> None:
        now = time.perf_counter()
        for query_id, sent in list(self.pending.items()):
            if now - sent > RESEND_AFTER:
                del self.pending[query_id]
                self.lost += 1
                self.send()


async def _run(host: str, port: int, args: argparse.Namespace) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    wires = _queries(args.edns, args.cold)
    clients: list[_Client] = []
    for index in range(args.clients):
        _, client = await loop.create_datagram_endpoint(
            lambda index=index: _Client(wires, args.inflight, index, args.cold),  # type: ignore[misc]
            remote_addr=(host, port),
        )
        clients.append(client)

    async def sweep() -> None:
        while True:
            await asyncio.sleep(0.25)
            for client in clients:
                client.resend_stale()

    sweeper = asyncio.create_task(sweep())
    await asyncio.sleep(args.warmup)
    for client in clients:
        client.recording = True
    started = time.perf_counter()
    await asyncio.sleep(args.seconds)
    elapsed = time.perf_counter() - started
    for client in clients:
        client.recording = False
    sweeper.cancel()
    for client in clients:
        assert client.transport is not None
        client.transport.close()
    latencies = sorted(lat for client in clients for lat in client.latencies)
    count = len(latencies)
    return {
        "queries": count,
        "qps": round(count / elapsed),
        "median_ms": round(statistics.median(latencies) * 1000, 3) if latencies else None,
        "p99_ms": round(latencies[int(count * 0.99)] * 1000, 3) if latencies else None,
        "lost": sum(client.lost for client in clients),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--inflight", type=int, default=4, help="outstanding queries per client")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--edns", action="store_true", help="queries carry an OPT record")
    parser.add_argument(
        "--cold", action="store_true", help="a random EDNS cookie per query: no cache hits"
    )
    parser.add_argument("--log-queries", action="store_true", help="server prints each query")
    parser.add_argument("--profile", metavar="FILE", help="run the server under cProfile")
    args = parser.parse_args()

    root = Path(__file__).resolve().parents[2]
    command = [sys.executable]
    if args.profile:
        command += ["-m", "cProfile", "-o", args.profile]
    command += ["-m", "fake_dns", "--host", "127.0.0.1", "--port", "0"]
    for domain in DOMAINS:
        command += ["--domain", domain]
    if not args.log_queries:
        command.append("--quiet")
    env = {**os.environ, "PYTHONPATH": str(root)}
    server = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL if args.log_queries else None,
        env=env,
        text=True,
    )
    try:
        assert server.stdout is not None
        ready = json.loads(server.stdout.readline())
        host, port = ready["dns"]
        if args.log_queries:  # keep the pipe drained so the server never blocks on it
            drain = subprocess.Popen(["cat"], stdin=server.stdout, stdout=subprocess.DEVNULL)
        result = asyncio.run(_run(host, port, args))
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
        if args.log_queries:
            drain.wait(timeout=10)
    params = {
        "seconds": args.seconds,
        "clients": args.clients,
        "inflight": args.inflight,
        "edns": args.edns,
        "cold": args.cold,
        "log_queries": args.log_queries,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    }
    print(json.dumps({"params": params, **result}))
    if args.profile:
        pstats.Stats(args.profile).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
