"""A sandbox on port 0 (every listener, HTTP included) and an aiohttp client for it."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator

import aiohttp
import pytest

from sandbox.testing import AsyncSandbox


@pytest.fixture
async def box() -> AsyncIterator[AsyncSandbox]:
    async with AsyncSandbox() as running:
        yield running


@pytest.fixture
async def client(box: AsyncSandbox) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=box.http_url) as session:
        yield session


async def submit(box: AsyncSandbox, sender: str, rcpts: list[str], raw: bytes) -> None:
    """SMTP to the submission server, as an app does."""

    def send() -> None:
        with smtplib.SMTP(*box.smtp_address) as smtp:
            smtp.sendmail(sender, rcpts, raw)

    await asyncio.to_thread(send)


def message(
    subject: str, *, to: str = "larry@beta.test", extra: str = "", body: str = "hi"
) -> bytes:
    return (
        f"From: Ann <ann@alpha.test>\r\nTo: Larry <{to}>\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@alpha.test>\r\n{extra}\r\n{body}\r\n"
    ).encode()
