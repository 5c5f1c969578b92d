"""Nothing accepted is lost: SIGKILL the server mid-load, restart it on the same file.

Every message that got a 250 must be in the store afterwards, and every relay delivery
queued before the kill must complete after the restart — exactly once: the MX server of
a sandbox domain marks the relay's delivery in the same commit as the copy it stores.
"""

from __future__ import annotations

import random
import signal
import smtplib
import sqlite3
import threading
import time
from pathlib import Path

from tests.conftest import ServeProcess


def test_sigkill_mid_load_loses_nothing_that_got_250(tmp_path: Path) -> None:
    data = tmp_path / "durable.sqlite3"
    server = ServeProcess(data)
    accepted: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def sender(worker: int) -> None:
        i = 0
        while not stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=5) as client:
                    client.ehlo("load")
                    while not stop.is_set():
                        rcpts = [
                            f"w{worker}@beta.test",
                            f"w{worker}@gamma.test",
                            "ext@real.example",
                        ]
                        body = f"Subject: {worker}-{i}\r\n\r\nload\r\n".encode()
                        client.mail("app@alpha.test")
                        for rcpt in rcpts:
                            client.rcpt(rcpt)
                        code, reply = client.data(body)
                        if code == 250:
                            with lock:
                                accepted.append(reply.decode().split()[-1])
                        i += 1
            except (OSError, smtplib.SMTPException):
                return  # the server was killed under us: whatever got no 250 may be lost

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(accepted) < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    stop.set()
    for thread in threads:
        thread.join(10)
    server.stop()
    assert len(accepted) >= 200, "the load did not get going"

    with sqlite3.connect(data) as conn:
        stored = {row[0] for row in conn.execute("SELECT queue_id FROM messages")}
        pending = conn.execute(
            "SELECT count(*) FROM deliveries WHERE state IN ('queued', 'deferred')"
        ).fetchone()[0]
    missing = [queue_id for queue_id in accepted if queue_id not in stored]
    assert missing == [], f"{len(missing)} messages got 250 but were lost"
    assert pending > 0, "the kill came too late to leave deliveries in the queue"

    restarted = ServeProcess(data)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with sqlite3.connect(data) as conn:
                pending = conn.execute(
                    "SELECT count(*) FROM deliveries WHERE state != 'delivered'"
                ).fetchone()[0]
            if pending == 0:
                break
            time.sleep(0.2)
        assert pending == 0, f"{pending} deliveries did not complete after the restart"
        with sqlite3.connect(data) as conn:
            # each accepted message reached both fake domains' mailboxes
            for queue_id in accepted:
                domains = {
                    row[0]
                    for row in conn.execute(
                        "SELECT mb.domain FROM messages child"
                        " JOIN messages parent ON parent.id = child.parent_id"
                        " JOIN entries e ON e.message_id = child.id"
                        " JOIN folders f ON f.id = e.folder_id"
                        " JOIN mailboxes mb ON mb.id = f.mailbox_id WHERE parent.queue_id = ?",
                        (queue_id,),
                    )
                }
                assert domains == {"beta.test", "gamma.test"}, queue_id
    finally:
        restarted.stop()


class Load:
    """Senders submitting to three domains (two fake, one held) until told to stop."""

    def __init__(self, port: int, round_no: int, accepted: list[str]) -> None:
        self.port = port
        self.round_no = round_no
        self.accepted = accepted
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.sender, args=(n,)) for n in range(3)]
        for thread in self.threads:
            thread.start()

    def sender(self, worker: int) -> None:
        i = 0
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=5) as client:
                client.ehlo("load")
                while not self.stop.is_set():
                    body = f"Subject: r{self.round_no}-{worker}-{i}\r\n\r\nload\r\n".encode()
                    client.mail("app@alpha.test")
                    for rcpt in (f"w{worker}@beta.test", f"w{worker}@gamma.test", "x@real.example"):
                        client.rcpt(rcpt)
                    code, reply = client.data(body)
                    if code == 250:
                        with self.lock:
                            self.accepted.append(reply.decode().split()[-1])
                    i += 1
        except (OSError, smtplib.SMTPException):
            return  # killed under us: what got no 250 may be lost

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)


def test_sigkill_at_random_moments_delivers_each_message_exactly_once(tmp_path: Path) -> None:
    data = tmp_path / "exactly-once.sqlite3"
    accepted: list[str] = []
    rng = random.Random(12)
    for round_no in range(20):
        server = ServeProcess(data)
        load = Load(server.smtp_port, round_no, accepted)
        time.sleep(rng.uniform(0.2, 1.2))  # a random moment of the load to kill it at
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
        load.join()
        server.stop()
    assert len(accepted) > 100, "the load did not get going"

    final = ServeProcess(data)
    try:
        deadline = time.monotonic() + 120
        pending = -1
        while time.monotonic() < deadline:
            with sqlite3.connect(data) as conn:
                pending = conn.execute(
                    "SELECT count(*) FROM deliveries WHERE state IN ('queued', 'deferred')"
                ).fetchone()[0]
            if pending == 0:
                break
            time.sleep(0.2)
        assert pending == 0, f"{pending} deliveries did not complete after the restarts"
    finally:
        final.stop()
    with sqlite3.connect(data) as conn:
        copies: dict[tuple[str, str], int] = {}
        for queue_id, mailbox in conn.execute(
            "SELECT parent.queue_id, mb.address FROM messages child"
            " JOIN messages parent ON parent.id = child.parent_id"
            " JOIN entries e ON e.message_id = child.id JOIN folders f ON f.id = e.folder_id"
            " JOIN mailboxes mb ON mb.id = f.mailbox_id WHERE f.name = 'INBOX'"
        ):
            copies[(queue_id, mailbox.split("@")[1])] = (
                copies.get((queue_id, mailbox.split("@")[1]), 0) + 1
            )
        held = dict(
            conn.execute(
                "SELECT m.queue_id, count(*) FROM messages m JOIN entries e ON e.message_id = m.id"
                " JOIN folders f ON f.id = e.folder_id JOIN mailboxes mb ON mb.id = f.mailbox_id"
                " WHERE mb.address = 'x@real.example' GROUP BY m.queue_id"
            ).fetchall()
        )
    wrong = {
        queue_id: (
            copies.get((queue_id, "beta.test")),
            copies.get((queue_id, "gamma.test")),
            held.get(queue_id),
        )
        for queue_id in accepted
        if (
            copies.get((queue_id, "beta.test")),
            copies.get((queue_id, "gamma.test")),
            held.get(queue_id),
        )
        != (1, 1, 1)
    }
    assert wrong == {}, f"{len(wrong)} of {len(accepted)} messages not stored exactly once"
