"""The pytest plugin: a mail sandbox for every test that asks for one.

Installed with the package (entry point ``pytest11``: ``mail_sandbox``), it adds:

- ``mail_sandbox``: a ``sandbox.testing.Sandbox`` shared by the whole session (one per
  set of domains), reset before each test that uses it: no messages, chaos as configured.
- ``mail_sandbox_async``: the same sandbox with the async API (``await
  mail_sandbox_async.wait_for(…)``), usable from any asyncio test.
- ``@pytest.mark.mail_sandbox(domains=[...])``, ``--mail-sandbox-domains a.test,b.test``
  and the ini option ``mail_sandbox_domains`` choose the fake domains (first wins, in
  that order; the default is alpha.test, beta.test, gamma.test).
- When a test that used the sandbox fails (mail reached it during the test), its
  report gets a section listing every stored message and every relay delivery not done
  yet; a failure with no mail involved gets none. (A ``wait_for`` that times out says
  the same in its own error.)
- ``mail_sandbox_async`` needs an asyncio test runner: pytest-asyncio (``asyncio_mode =
  "auto"``, or ``@pytest.mark.asyncio`` on the test) or anyio's plugin.

The sandbox is imported and started on first use only, so a session that never asks for
it pays nothing.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sandbox.testing import AsyncSandbox, Sandbox

MARKER = "mail_sandbox"
REPORT_SECTION = "mail-sandbox: what arrived"
_IN_USE = pytest.StashKey["Sandbox"]()
_LAST_ID = pytest.StashKey[int]()  # the newest copy id when the test began


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mail-sandbox")
    group.addoption(
        "--mail-sandbox-domains",
        dest="mail_sandbox_domains",
        metavar="DOMAINS",
        default=None,
        help="Comma-separated fake domains for the mail_sandbox fixture.",
    )
    parser.addini(
        "mail_sandbox_domains",
        type="args",
        default=[],
        help="Fake domains for the mail_sandbox fixture (space or comma separated).",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(domains=[...]): the fake domains this test's mail_sandbox serves",
    )


class SandboxPool:
    """One running sandbox per set of domains, for the whole session."""

    def __init__(self) -> None:
        self._running: dict[tuple[str, ...] | None, Sandbox] = {}

    def get(self, domains: tuple[str, ...] | None) -> Sandbox:
        sandbox = self._running.get(domains)
        if sandbox is None:
            from sandbox.testing import Sandbox

            sandbox = Sandbox(domains).start()
            self._running[domains] = sandbox
        return sandbox

    def close(self) -> None:
        running, self._running = self._running, {}
        for sandbox in running.values():
            sandbox.close()


def _split(values: list[str] | str) -> tuple[str, ...]:
    items = [values] if isinstance(values, str) else values
    names = [name.strip().lower() for item in items for name in item.split(",")]
    return tuple(name for name in names if name)


def domains_for(item: pytest.Item) -> tuple[str, ...] | None:
    """The marker's domains, else the command line's, else the ini file's, else None."""
    marker = item.get_closest_marker(MARKER)
    if marker is not None:
        given = marker.kwargs.get("domains", marker.args[0] if marker.args else None)
        if given is not None:
            domains = _split(list(given) if not isinstance(given, str) else given)
            if not domains:
                raise pytest.UsageError(f"{item.nodeid}: mark.{MARKER}(domains=…) is empty")
            return domains
    option = item.config.getoption("mail_sandbox_domains")
    if option:
        return _split(str(option))
    ini = item.config.getini("mail_sandbox_domains")
    return _split(list(ini)) or None


@pytest.fixture(scope="session")
def _mail_sandbox_pool() -> Iterator[SandboxPool]:
    pool = SandboxPool()
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def mail_sandbox(request: pytest.FixtureRequest, _mail_sandbox_pool: SandboxPool) -> Sandbox:
    """A running sandbox with no messages and the configured chaos, for this test."""
    sandbox = _mail_sandbox_pool.get(domains_for(request.node))
    sandbox.reset()
    request.node.stash[_IN_USE] = sandbox
    request.node.stash[_LAST_ID] = _last_id(sandbox)
    return sandbox


@pytest.fixture
def mail_sandbox_async(mail_sandbox: Sandbox) -> AsyncSandbox:
    """``mail_sandbox`` with the async API, for ``async def`` tests."""
    return mail_sandbox.as_async()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" and report.failed:
        sandbox = item.stash.get(_IN_USE, None)
        if sandbox is not None and sandbox.running:
            try:
                used = _last_id(sandbox) > item.stash.get(_LAST_ID, 0)
                text = sandbox.report() if used else ""
            except Exception as exc:  # the report must not hide the test's own failure
                text = f"(could not read the sandbox: {exc!r})"
            if text:
                report.sections.append((REPORT_SECTION, text))
    return report


def _last_id(sandbox: Sandbox) -> int:
    """Copy ids only grow: a higher one after the test means mail arrived during it."""
    return sandbox.call(lambda runtime: runtime.store.last_id())
