"""The relay between fake domains: a persistent queue delivered by MX lookup."""

from sandbox.relay.queue import Relay

__all__ = ["Relay"]
