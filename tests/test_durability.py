"""Nothing accepted is lost: SIGKILL the server mid-load, restart it on the same file.

Every message that got a 250 must be in the store afterwards, and every relay delivery
queued before the kill must complete after the restart (at least once: a delivery in
flight at the kill may be made twice, as with any real MTA).
"""

from __future__ import annotations

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
