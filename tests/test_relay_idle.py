"""The relay's connection cache closes an idle connection when its idle time is up."""

from __future__ import annotations

import asyncio

import aiosmtplib

from sandbox.events import SmtpSessionEnded
from sandbox.relay.client import ConnectionCache
from sandbox.testing import AsyncSandbox


async def test_an_idle_connection_is_closed_after_its_idle_time() -> None:
    async with AsyncSandbox() as box:
        subscription = box.runtime.bus.subscribe()
        host, port = box.mx_addresses["beta.test"]
        client = aiosmtplib.SMTP(hostname=host, port=port, start_tls=False)
        await client.connect()
        await client.ehlo(hostname="mx.alpha.test")
        cache = ConnectionCache(idle_seconds=0.2)
        cache.give((host, port, None, "mx.alpha.test"), client, False)
        # The MX server logs the session's end once the cache lets the connection go.
        async with asyncio.timeout(10):
            while True:
                event = await subscription.get()
                if isinstance(event, SmtpSessionEnded) and event.kind == "smtp.session":
                    break
        subscription.close()
        assert not client.is_connected
        assert cache.take((host, port, None, "mx.alpha.test")) is None
