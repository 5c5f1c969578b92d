"""IMAP fetch benchmark: SELECT and a header FETCH over 10,000 messages, and a full mbsync.

The server runs in its own process (``--serve``: fill a data file, start the IMAP
listener, print one JSON ready line); this process is only the client. Figures are the
median of ``--runs`` runs; ``header_fetch_first_s`` is the first (cold) one. With
``--dovecot`` the same messages are served from a Maildir by a throwaway, unprivileged
Dovecot (``dovecot -F`` on free ports, stopped at the end; the harness is shared with
pop3_download.py), the runs alternate between the two servers so that noise from the
rest of the machine hits both alike, and the ratios are sandbox / Dovecot.

Also timed: one ``FETCH n BODY.PEEK[HEADER.FIELDS (...)]`` per message, each waiting for
its reply (curl's pattern), on one connection: ``single_fetches_s``.

    python tests/bench/imap_fetch.py --messages 10000 --runs 5 [--dovecot]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import imaplib
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pop3_download import DOVECOT_MISSING, Dovecot  # noqa: E402  (the shared harness)

# mbsync's own cost is one file per message; on an overlay or ext4 disk its openat() calls
# take longer than the whole IMAP exchange, so the Maildir goes to tmpfs when there is one.
MAILDIR_ROOT = "/dev/shm" if os.path.isdir("/dev/shm") else None
sys.path.insert(0, str(ROOT))
USER = "larry@beta.test"
HEADER_FETCH = "(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])"
# curl's pattern (and many scripts'): one FETCH a message, each waiting for its reply.
SINGLE_FETCH = "(BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID)])"
_WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "invoice",
    "meeting",
    "report",
    "budget",
    "team",
]


def realistic(i: int, rng: random.Random) -> bytes:
    """A 2-8 KiB message shaped like real mail: Received chain, multipart/alternative."""
    body = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(200, 1000)))
    received = "".join(
        f"Received: from mx{h}.alpha.test (mx{h}.alpha.test [127.0.0.{h + 10}])\r\n"
        f"\tby mx.beta.test with ESMTP id {i:08x}{h}; Mon, 1 Jan 2024 10:00:0{h} +0000\r\n"
        for h in range(3)
    )
    return (
        f"{received}From: Sender {i % 50} <sender{i % 50}@alpha.test>\r\nTo: {USER}\r\n"
        f"Subject: {rng.choice(_WORDS).title()} {i}\r\n"
        f"Date: Mon, 1 Jan 2024 10:{i % 60:02d}:00 +0000\r\n"
        f"Message-ID: <{i}.bench@alpha.test>\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/alternative; boundary="b{i}"\r\n\r\n'
        f"--b{i}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
        f"--b{i}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>{body}</p>\r\n--b{i}--\r\n"
    ).encode()


def serve(data: str, messages: int) -> None:
    from sandbox.config import Config
    from sandbox.events import EventBus
    from sandbox.imap import ImapSettings, start_imap_server
    from sandbox.store import Copy, NewMessage, SqliteStore

    async def main() -> None:
        store = await SqliteStore.open(data)
        bus = EventBus()
        have = await store.count_messages()
        rng = random.Random(7)
        batch = []
        for i in range(have, messages):
            batch.append(
                store.ingest(
                    NewMessage(realistic(i, rng), "s@alpha.test", (USER,), "bench", (Copy(USER),))
                )
            )
            if len(batch) == 500:
                await asyncio.gather(*batch)
                batch = []
        await asyncio.gather(*batch)
        listener = await start_imap_server(
            store, bus, ImapSettings.from_config(Config()), host="127.0.0.1", port=0
        )
        print(json.dumps({"event": "ready", "imap": list(listener.address)}), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def client(host: str, port: int) -> imaplib.IMAP4:
    conn = imaplib.IMAP4(host, port, timeout=60)
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.login(USER, "bench")
    return conn


def time_fetch(host: str, port: int) -> tuple[float, float, int]:
    conn = client(host, port)
    started = time.perf_counter()
    typ, data = conn.select("INBOX")
    selected = time.perf_counter() - started
    assert typ == "OK", data
    started = time.perf_counter()
    typ, fetched = conn.fetch("1:*", HEADER_FETCH)
    fetch = time.perf_counter() - started
    assert typ == "OK"
    conn.logout()
    return selected, fetch, sum(1 for item in fetched if isinstance(item, tuple))


def time_single(host: str, port: int, count: int) -> float:
    """Seconds for ``count`` single-message header FETCHes, one command at a time."""
    conn = client(host, port)
    typ, data = conn.select("INBOX", readonly=True)
    assert typ == "OK", data
    started = time.perf_counter()
    for n in range(1, count + 1):
        typ, _ = conn.fetch(str(n), SINGLE_FETCH)
        assert typ == "OK"
    elapsed = time.perf_counter() - started
    conn.logout()
    return elapsed


def time_mbsync(host: str, port: int, work: Path) -> float:
    binary = shutil.which("mbsync")
    if binary is None:
        return float("nan")
    maildir = Path(tempfile.mkdtemp(prefix="imap-bench-", dir=MAILDIR_ROOT))
    rc = work / "mbsyncrc"
    rc.write_text(
        # FSync off: the client's fsync per Maildir file would dwarf the server's time.
        f"FSync no\n\nIMAPAccount a\nHost {host}\nPort {port}\nUser {USER}\nPass x\nSSLType None\n"
        f"AuthMechs LOGIN\n\nIMAPStore r\nAccount a\n\nMaildirStore l\nPath {maildir}/\n"
        f"Inbox {maildir}/INBOX\n\nChannel c\nFar :r:\nNear :l:\nPatterns INBOX\n"
        f"Create Near\nSyncState *\nSync Pull\n"
    )
    started = time.perf_counter()
    subprocess.run([binary, "-q", "-c", str(rc), "c"], check=True, timeout=600)
    elapsed = time.perf_counter() - started
    shutil.rmtree(maildir)
    return elapsed


def measure(servers: dict[str, tuple[str, int]], runs: int, work: Path) -> None:
    """Alternate between the servers, run by run; print each one's medians, then ratios."""
    times: dict[str, dict[str, list[float]]] = {
        name: {"select": [], "fetch": [], "single": [], "mbsync": []} for name in servers
    }
    counts: dict[str, int] = {}
    for _ in range(runs):
        for name, (host, port) in servers.items():
            selected, fetched, counts[name] = time_fetch(host, port)
            times[name]["select"].append(selected)
            times[name]["fetch"].append(fetched)
        for name, (host, port) in servers.items():
            times[name]["single"].append(time_single(host, port, counts[name]))
        for name, (host, port) in servers.items():
            times[name]["mbsync"].append(time_mbsync(host, port, work))
    rows = {}
    for name, t in times.items():
        rows[name] = {
            "server": name,
            "messages": counts[name],
            "select_s": round(statistics.median(t["select"]), 4),
            "header_fetch_s": round(statistics.median(t["fetch"]), 4),
            "header_fetch_first_s": round(t["fetch"][0], 4),
            "header_fetch_runs": [round(f, 3) for f in t["fetch"]],
            "single_fetches_s": round(statistics.median(t["single"]), 3),
            "single_fetch_ms": round(1000 * statistics.median(t["single"]) / counts[name], 3),
            "mbsync_s": round(statistics.median(t["mbsync"]), 4),
            "maildir_on": MAILDIR_ROOT or tempfile.gettempdir(),
            "runs": runs,
        }
        print(json.dumps(rows[name]))
    if "dovecot" in rows:
        ours, theirs = rows["mail-sandbox"], rows["dovecot"]
        keys = (
            "select_s",
            "header_fetch_s",
            "header_fetch_first_s",
            "single_fetches_s",
            "mbsync_s",
        )
        print(json.dumps({f"ratio_{k}": _ratio(ours[k], theirs[k]) for k in keys}))


def _ratio(a: object, b: object) -> float | None:
    assert isinstance(a, float) and isinstance(b, float)
    return round(a / b, 2) if b else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--data", help="reuse this data file (filled on first use)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dovecot", action="store_true", help="also measure Dovecot, side by side")
    args = parser.parse_args()
    if args.serve:
        serve(args.data, args.messages)
        return
    if args.dovecot and shutil.which("dovecot") is None:
        raise SystemExit(DOVECOT_MISSING)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        data = args.data or str(work / "bench.sqlite3")
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", "--data", data, "--messages", str(args.messages)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        stack.callback(_stop, proc)
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        servers = {"mail-sandbox": (str(ready["imap"][0]), int(ready["imap"][1]))}
        if args.dovecot:
            rng = random.Random(7)  # the same messages as serve() stores
            dovecot = stack.enter_context(
                Dovecot([realistic(i, rng) for i in range(args.messages)])
            )
            servers["dovecot"] = ("127.0.0.1", dovecot.imap_port)
        measure(servers, args.runs, work)


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(10)


if __name__ == "__main__":
    main()
