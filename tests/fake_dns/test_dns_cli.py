"""``python -m fake_dns`` as a subprocess, and the real ``dig`` against the stub."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import dns.message
import dns.query
import dns.rcode
import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def read_line(stream: IO[str], wait: float = 10.0) -> str:
    """One line from a child's pipe, failing instead of hanging."""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(wait):
            pytest.fail(f"no line within {wait} s")
    return stream.readline()


@pytest.fixture
def stub() -> Iterator[tuple[subprocess.Popen[str], str, int]]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fake_dns",
            "--port",
            "0",
            "--domain",
            "alpha.test=127.0.0.11",
            "--domain",
            "beta.test=127.0.0.12:2526",
            "--mx-port",
            "2525",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert process.stdout is not None
    try:
        ready = json.loads(read_line(process.stdout))
        assert ready["event"] == "ready"
        host, port = ready["dns"]
        yield process, host, port
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_module_runs_the_stub(stub: tuple[subprocess.Popen[str], str, int], signum: int) -> None:
    process, host, port = stub
    assert host == "127.0.0.1"
    assert port > 0
    query = dns.message.make_query("beta.test", "MX")
    response = dns.query.udp(query, host, port=port, timeout=5)
    assert [rdata.to_text() for rdata in response.answer[0]] == ["10 mx.beta.test."]
    srv = dns.query.tcp(dns.message.make_query("_smtp._tcp.beta.test", "SRV"), host, port=port)
    assert srv.answer[0][0].port == 2526
    assert process.stdout is not None
    line = json.loads(read_line(process.stdout))
    assert line["event"] == "query"
    assert (line["qname"], line["qtype"], line["rcode"], line["transport"]) == (
        "beta.test.",
        "MX",
        "NOERROR",
        "udp",
    )
    assert line["answer"] == "MX 10 mx.beta.test."
    assert line["query_id"] == query.id
    process.send_signal(signum)
    assert process.wait(10) == 0
    assert process.stderr is not None
    assert process.stderr.read() == ""


@pytest.mark.parametrize(
    "args",
    [
        ["--bogus"],
        ["--port", "abc"],
        ["--port", "70000"],
        ["--domain", "nonsense"],
        ["--domain", "a.test=not-an-ip"],
        ["--domain", "a.test=127.0.0.1:notaport"],
        ["--host", "localhost", "--port", "0"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fake_dns", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "error" in lines[0]


def dig(require_binary: Callable[[str], str], server: Any, *args: str) -> str:
    binary = require_binary("dig")
    result = subprocess.run(
        [binary, f"@{server.host}", "-p", str(server.port), "+time=2", "+tries=1", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout


@pytest.mark.clients
def test_dig_short_mx(require_binary: Callable[[str], str], threaded_server: Any) -> None:
    assert dig(require_binary, threaded_server, "+short", "MX", "beta.test") == "10 mx.beta.test.\n"


@pytest.mark.clients
def test_dig_over_tcp(require_binary: Callable[[str], str], threaded_server: Any) -> None:
    out = dig(require_binary, threaded_server, "+tcp", "+short", "A", "mx.beta.test")
    assert out == "127.0.0.12\n"
    assert threaded_server.logs[-1].transport == "tcp"
    big = dig(require_binary, threaded_server, "+short", "TXT", "big.alpha.test")
    assert len(big.splitlines()) == 24  # TC over UDP, dig retried over TCP


@pytest.mark.clients
def test_dig_refused_and_nxdomain(require_binary: Callable[[str], str], threaded_server: Any):
    refused = dig(require_binary, threaded_server, "A", "www.example.com")
    assert "status: REFUSED" in refused
    nxdomain = dig(require_binary, threaded_server, "A", "nope.beta.test")
    assert "status: NXDOMAIN" in nxdomain
    assert "flags: qr aa rd;" in nxdomain
    assert "SOA" in nxdomain
    assert threaded_server.logs[-1].rcode == dns.rcode.to_text(dns.rcode.NXDOMAIN)


@pytest.mark.clients
def test_dig_reverse(require_binary: Callable[[str], str], threaded_server: Any) -> None:
    assert dig(require_binary, threaded_server, "+short", "-x", "127.0.0.12") == "mx.beta.test.\n"
