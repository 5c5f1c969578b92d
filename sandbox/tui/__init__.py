"""The terminal UI (Textual): ``make_app`` builds it for the CLI and the tests."""

from sandbox.tui.app import SandboxApp, make_app

__all__ = ["SandboxApp", "make_app"]
