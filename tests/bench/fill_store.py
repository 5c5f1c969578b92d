"""Fill a data file with many realistic messages, fast, straight through the store.

No SMTP: messages are built here and go through the store's own ingest (``ingest_many``,
in batches inside the store's writer), so every trigger, index and full-text row a real
arrival writes is written. What the messages look like: a few thousand mailboxes over the
fake domains (some held, at other domains), a Zipf-like spread so a few mailboxes hold
most mail, senders from a pool, subjects from templates, plain text, HTML alternatives and
small attachments, 1-6 KB, received over the last ``--days`` days, most of them \\Seen,
one "stored" hop each. The change feed is not written for them (a fill is not a change
anyone is waiting for).

    python tests/bench/fill_store.py --data /tmp/big.db --messages 1000000

Prints one JSON line: messages, seconds, messages/s, file size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import aiosqlite  # noqa: E402

from sandbox.store import SqliteStore  # noqa: E402
from sandbox.store.messages import Summarized, ingest_many, summarized  # noqa: E402
from sandbox.store.models import Copy, Hop, NewMessage  # noqa: E402

DOMAINS = ("alpha.test", "beta.test", "gamma.test")
HELD_DOMAINS = ("example.com", "gmail.example", "corp.example")
FIRST = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy")
SUBJECTS = (
    "Your order #{n} has shipped",
    "Password reset for account {n}",
    "Invoice {n} is ready",
    "Welcome aboard, user {n}!",
    "[ci] build {n} failed on main",
    "Re: meeting notes {n}",
    "Your weekly digest ({n} new items)",
    "Verify your e-mail address (code {n})",
)
WORDS = tuple(
    [
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "lazy",
        "dog",
        "order",
        "shipped",
        "invoice",
        "account",
        "password",
        "reset",
        "please",
        "click",
        "link",
        "below",
        "thanks",
        "regards",
        "team",
        "support",
        "update",
        "your",
        "settings",
        "payment",
        "received",
        "delivery",
        "tracking",
        "number",
        "weekly",
        "digest",
        "new",
        "items",
    ]
)


def mailboxes(count: int, rng: random.Random) -> list[tuple[str, bool]]:
    """(address, held) for ``count`` mailboxes; one in twenty at a domain not faked."""
    out = []
    for i in range(count):
        held = i % 20 == 19
        domain = HELD_DOMAINS[i % 3] if held else DOMAINS[i % 3]
        out.append((f"{FIRST[i % len(FIRST)]}{i}@{domain}", held))
    rng.shuffle(out)
    return out


def paragraphs(rng: random.Random, count: int = 512) -> list[str]:
    """A pool of text lines, made once: building each body word by word costs more than
    storing it."""
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 12))) for _ in range(count)]


def body(rng: random.Random, n: int, pool: list[str]) -> str:
    lines = rng.choices(pool, k=rng.randint(4, 24))
    lines.append(f"https://shop.alpha.test/orders/{n}?utm_source=mail")
    return "\r\n".join(lines) + "\r\n"


def raw_message(rng: random.Random, n: int, to: str, at: float, pool: list[str]) -> bytes:
    sender = f"noreply{n % 50}@{DOMAINS[n % 3]}"
    subject = SUBJECTS[n % len(SUBJECTS)].format(n=n)
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(at))
    head = (
        f"Received: from app.local by submission.localhost (mail-sandbox) id f{n:011x}\r\n"
        f"\tfor <{to}>; {date}\r\n"
        f"From: Shop {n % 50} <{sender}>\r\n"
        f"To: <{to}>\r\n"
        f"Subject: {subject}\r\n"
        f"Date: {date}\r\n"
        f"Message-ID: <{n}.{int(at)}@{DOMAINS[n % 3]}>\r\n"
        "MIME-Version: 1.0\r\n"
    )
    text = body(rng, n, pool)
    kind = n % 10
    if kind < 6:
        return (head + 'Content-Type: text/plain; charset="utf-8"\r\n\r\n' + text).encode()
    boundary = f"=_b{n}"
    parts = [f'Content-Type: text/plain; charset="utf-8"\r\n\r\n{text}']
    if kind < 9:
        mime = f'multipart/alternative; boundary="{boundary}"'
        html = "<html><body><p>" + text.replace("\r\n", "</p><p>") + "</p></body></html>"
        parts.append(f'Content-Type: text/html; charset="utf-8"\r\n\r\n{html}\r\n')
    else:
        mime = f'multipart/mixed; boundary="{boundary}"'
        blob = os.urandom(rng.randint(300, 1500)).hex()
        parts.append(
            f'Content-Type: application/octet-stream; name="r{n}.bin"\r\n'
            f'Content-Disposition: attachment; filename="r{n}.bin"\r\n\r\n{blob}\r\n'
        )
    joined = "".join(f"--{boundary}\r\n{p}" for p in parts) + f"--{boundary}--\r\n"
    return (head + f"Content-Type: {mime}\r\n\r\n" + joined).encode()


def _job(items: list[Summarized]) -> Callable[[aiosqlite.Connection], Awaitable[None]]:
    async def job(conn: aiosqlite.Connection) -> None:
        await ingest_many(conn, items)

    return job


async def fill(path: str, count: int, boxes: int, batch: int, days: float, seed: int) -> float:
    """Add ``count`` messages to the file at ``path``; returns the seconds it took."""
    rng = random.Random(seed)
    where = mailboxes(boxes, rng)
    # Zipf-like: mailbox k gets weight 1/(k+1), so the first few hold most of the mail.
    weights = [1.0 / (k + 1) for k in range(len(where))]
    pool = paragraphs(rng)
    store = await SqliteStore.open(path, follow=False)
    start = time.monotonic()
    now = time.time()
    done = 0
    writing: asyncio.Future[None] | None = None
    try:
        while done < count:
            size = min(batch, count - done)
            picks = rng.choices(where, weights, k=size)
            items = []
            for offset, (address, held) in enumerate(picks):
                n = done + offset
                at = now - days * 86400 * (1 - n / count)
                flags = ("\\Seen",) if rng.random() < 0.7 else ()
                message = NewMessage(
                    raw=raw_message(rng, n, address, at, pool),
                    envelope_from=f"noreply{n % 50}@{DOMAINS[n % 3]}",
                    envelope_to=(address,),
                    source="fill",
                    copies=(Copy(address, held=held, flags=flags),),
                    hops=(Hop("stored", "ok", {"mailbox": address}, at=at),),
                    received_at=at,
                    queue_id=f"f{n:011x}",
                )
                items.append(summarized(message))

            # The store writes one batch while the next is built (its SQLite runs in a
            # thread of its own).
            if writing is not None:
                await writing
            writing = asyncio.ensure_future(store.write(_job(items)))
            done += size
            if done % (batch * 50) == 0 or done == count:
                rate = done / (time.monotonic() - start)
                print(f"{done:,} messages, {rate:,.0f}/s", file=sys.stderr, flush=True)
        if writing is not None:
            await writing
    finally:
        await store.close()
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="the data file (created or added to)")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--mailboxes", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=2_000, help="messages a transaction")
    parser.add_argument("--days", type=float, default=60.0, help="received over this many")
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    seconds = asyncio.run(
        fill(args.data, args.messages, args.mailboxes, args.batch, args.days, args.seed)
    )
    report = {
        "messages": args.messages,
        "mailboxes": args.mailboxes,
        "seconds": round(seconds, 1),
        "messages_per_s": round(args.messages / seconds),
        "file_mb": round(os.path.getsize(args.data) / 1e6),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
