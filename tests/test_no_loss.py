"""Nothing accepted is lost: a delivery waiting in the queue survives its message's last copy.

Each path that removes a copy (IMAP EXPUNGE, MOVE then folder DELETE, a held recipient
expunging its copy, POP3 DELE then an expunge of Trash, ``clear``) runs while the relay's
delivery is deferred by chaos; then chaos goes off, the queue retries, and the recipient
has the message exactly once.
"""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from sandbox.config import load_config
from sandbox.runtime import Runtime
from sandbox.store import DEFERRED, Delivery
from sandbox.testing import Sandbox
from tests.test_change_feed import RawImap, expunged

LARRY = "larry@beta.test"
HELD = "ext@real.example"  # not a sandbox domain: kept in its local mailbox, held


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    base = load_config(env={}, flags={"data": ":memory:"})
    # Retries far apart: the test says when the queue retries (retry_now), not the clock.
    config = replace(base, relay=replace(base.relay, retry_schedule=(60.0, 60.0)))
    with Sandbox(config=config) as running:
        yield running


def submit(sandbox: Sandbox, sender: str, rcpts: list[str], subject: str) -> None:
    raw = (
        f"From: {sender}\r\nTo: {', '.join(rcpts)}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@test>\r\n\r\nkeep me\r\n"
    ).encode()
    with smtplib.SMTP(*sandbox.smtp_address, timeout=10) as client:
        client.sendmail(sender, rcpts, raw)


def pending(sandbox: Sandbox) -> list[Delivery]:
    async def read(runtime: Runtime) -> list[Delivery]:
        return await runtime.store.pending_deliveries()

    return sandbox.call(read)


def wait_deferred(sandbox: Sandbox) -> Delivery:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        deferred = [d for d in pending(sandbox) if d.state == DEFERRED]
        if deferred:
            return deferred[0]
        time.sleep(0.02)
    raise AssertionError(f"the delivery was never deferred: {sandbox.report()}")


def retry(sandbox: Sandbox) -> None:
    async def now(runtime: Runtime) -> None:
        await runtime.store.retry_now()
        runtime.relay.wake()

    sandbox.call(now)


def imap(sandbox: Sandbox, user: str) -> imaplib.IMAP4:
    client = imaplib.IMAP4(*sandbox.imap_address)
    client.login(user, "x")
    return client


def expunge_all(client: imaplib.IMAP4, folder: str) -> None:
    typ, _ = client.select(folder)
    assert typ == "OK"
    client.store("1:*", "+FLAGS", "(\\Deleted)")
    typ, data = client.expunge()
    assert typ == "OK" and data[0] is not None, f"nothing was expunged from {folder}"


def expunge_sent(sandbox: Sandbox) -> None:
    client = imap(sandbox, "app@alpha.test")
    expunge_all(client, "Sent")
    client.logout()


def move_then_delete_folder(sandbox: Sandbox) -> None:
    client = imap(sandbox, "app@alpha.test")
    assert client.create("Old")[0] == "OK"
    client.select("Sent")
    typ, _ = client.uid("MOVE", "1:*", "Old")
    assert typ == "OK"
    client.select("INBOX")
    assert client.delete("Old")[0] == "OK"
    client.logout()


def held_recipient_expunges(sandbox: Sandbox) -> None:
    client = imap(sandbox, HELD)
    expunge_all(client, "INBOX")
    client.logout()


def pop3_dele_then_trash_expunge(sandbox: Sandbox) -> None:
    box = poplib.POP3(*sandbox.pop3_address, timeout=10)
    box.user(HELD)
    box.pass_("x")
    assert box.dele(1).startswith(b"+OK")
    box.quit()
    client = imap(sandbox, HELD)
    expunge_all(client, "Trash")
    client.logout()


def clear(sandbox: Sandbox) -> None:
    assert sandbox.clear() >= 1


PATHS: dict[str, tuple[str, list[str], Callable[[Sandbox], None]]] = {
    # path: (sender, recipients, what removes the last copy)
    "imap-expunge-sent": ("app@alpha.test", [LARRY], expunge_sent),
    "move-then-delete-folder": ("app@alpha.test", [LARRY], move_then_delete_folder),
    "held-cc-expunges": ("app@real.example", [LARRY, HELD], held_recipient_expunges),
    "pop3-dele-then-trash": ("app@real.example", [LARRY, HELD], pop3_dele_then_trash_expunge),
    "clear": ("app@alpha.test", [LARRY, HELD], clear),
}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_a_deferred_delivery_survives_its_last_copy(sandbox: Sandbox, path: str) -> None:
    sender, rcpts, remove = PATHS[path]
    sandbox.chaos("beta.test").tempfail(451, "rcpt")
    submit(sandbox, sender, rcpts, f"survives-{path}")
    wait_deferred(sandbox)

    remove(sandbox)
    assert sandbox.messages(subject=f"survives-{path}", folder=None) == []
    [waiting] = pending(sandbox)  # the delivery is still queued, its message still there
    assert waiting.recipients == (LARRY,)

    sandbox.chaos("beta.test").off()
    retry(sandbox)
    delivered = sandbox.wait_for(to=LARRY, subject=f"survives-{path}", timeout=10)
    assert b"keep me" in delivered.raw
    assert pending(sandbox) == []
    assert [m.subject for m in sandbox.messages(to=LARRY)] == [f"survives-{path}"]


def test_clear_with_queue_drops_the_waiting_deliveries(sandbox: Sandbox) -> None:
    sandbox.chaos("beta.test").tempfail(451, "rcpt")
    submit(sandbox, "app@alpha.test", [LARRY], "dropped")
    wait_deferred(sandbox)

    async def clear_all(runtime: Runtime) -> int:
        return await runtime.store.clear(with_queue=True)

    assert sandbox.call(clear_all) == 1
    assert pending(sandbox) == []


def test_retention_in_the_same_process_reaches_an_idle_session() -> None:
    """MessagesPruned carries a count only: the session rereads its folder (§7.4.1)."""
    base = load_config(env={}, flags={"data": ":memory:"})
    retention = replace(base.retention, max_messages=1, grace=0.0, interval=3600.0)
    with Sandbox(config=replace(base, retention=retention)) as sandbox:
        for subject in ("old", "new"):
            submit(sandbox, "app@real.example", [HELD], subject)
        idler = RawImap(sandbox.imap_address[1])
        try:
            idler.command(f"LOGIN {HELD} x")
            untagged, _ = idler.command("SELECT INBOX")
            assert b"* 2 EXISTS" in untagged
            idler.idle()

            async def prune(runtime: Runtime) -> None:
                await runtime.prune_now()

            sandbox.call(prune)
            assert expunged(idler.until(rb"\* 1 EXPUNGE")) == [1]
        finally:
            idler.close()
        assert [m.subject for m in sandbox.messages(to=HELD)] == ["new"]
