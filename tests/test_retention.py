"""Retention in a running sandbox: old mail goes, the store stays bounded."""

from __future__ import annotations

import smtplib
import time
from dataclasses import replace

from sandbox.config import Config
from sandbox.testing import Sandbox


def test_running_sandbox_prunes_beyond_max_messages(config: Config) -> None:
    retention = replace(config.retention, max_messages=3, grace=0.0, interval=0.1)
    with Sandbox(config=replace(config, retention=retention)) as sandbox:
        with smtplib.SMTP(*sandbox.smtp_address, timeout=10) as client:
            for i in range(6):
                client.sendmail(
                    "app@myapp.example", ["x@real.example"], f"Subject: {i}\r\n\r\n.\r\n".encode()
                )
        deadline = time.monotonic() + 5
        while len(sandbox.messages(folder=None)) > 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [r.subject for r in sandbox.messages(folder=None)] == ["3", "4", "5"]
        assert sandbox.journal("messages.pruned")


def test_retention_is_off_by_default(config: Config) -> None:
    assert (config.retention.max_messages, config.retention.max_age) == (0, 0.0)
