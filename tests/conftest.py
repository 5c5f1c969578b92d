"""Shared fixtures: a sandbox on port 0 in a background thread (``sandbox.testing``), a
`serve` subprocess, and real client binaries that skip locally but fail in CI
(MAIL_SANDBOX_REQUIRE_CLIENTS=1)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sandbox.config import Config, load_config
from sandbox.testing import Sandbox

DATA = Path(__file__).parent / "data"
# Every listener of `serve` on a free port: tests never collide with each other or with
# a sandbox the developer has running on the default ports.
LISTENERS = ("smtp", "smtps", "mx", "dns", "pop3", "pop3s", "imap", "imaps", "http")
FREE_PORTS = [arg for name in LISTENERS for arg in (f"--{name}-port", "0")]


def require_binary(name: str) -> str:
    """The path of a client binary; skip without it, unless CI demands every client."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install it; .ci/run does)"
        if os.environ.get("MAIL_SANDBOX_REQUIRE_CLIENTS") == "1":
            pytest.fail(f"MAIL_SANDBOX_REQUIRE_CLIENTS=1 but {message}")
        pytest.skip(message)
    return path


# Every listener on port 0: the suite passes beside a sandbox on the default ports.
PORT0 = {f"{name}.port": 0 for name in LISTENERS}


def make_config(tmp_path: Path, **overrides: Any) -> Config:
    """Every listener on port 0, data in the test's own folder, no environment leaking in."""
    flags = {"data": str(tmp_path / "sandbox.sqlite3"), **PORT0}
    config = load_config(env={}, flags=flags)
    return replace(config, **overrides) if overrides else config


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path)


@pytest.fixture
def sandbox(config: Config) -> Iterator[Sandbox]:
    """The sandbox of ``config`` (every listener on port 0) in a background thread."""
    with Sandbox(config=config) as running:
        yield running


class ServeProcess:
    """`mail-sandbox serve` in a subprocess, as a user or another language runs it."""

    def __init__(self, data: Path, *extra: str) -> None:
        self.data = data
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sandbox",
                "serve",
                "--data",
                str(data),
                *FREE_PORTS,
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(
                f"serve did not start: {self.proc.stderr.read() if self.proc.stderr else ''}"
            )
        self.ready: dict[str, Any] = json.loads(line)
        self.smtp_port: int = self.ready["smtp"][1]
        self.dns_port: int = self.ready["dns"][1]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout=10)
        finally:
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any MAIL_SANDBOX_* setting the developer may have."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAIL_SANDBOX_")}
    env.update(extra)
    return env


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[ServeProcess]:
    proc = ServeProcess(tmp_path / "served.sqlite3")
    try:
        yield proc
    finally:
        proc.stop()


def cli(
    *args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run `python -m sandbox ARGS` and capture everything."""
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args],
        capture_output=True,
        text=True,
        input=input,
        env=env or clean_env(),
        timeout=timeout,
    )
