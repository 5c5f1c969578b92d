"""A store with fixed data for the TUI tests: fixed times, fixed queue ids, every state.

Times start at 2024-01-02 09:00:00 UTC; the tests run with TZ=UTC so they render the
same everywhere.
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

from sandbox.store import Copy, Hop, NewDelivery, NewMessage, SqliteStore

BASE = 1704186000.0  # 2024-01-02 09:00:00 UTC


def _raw(sender: str, to: str, subject: str, body: str, minute: int) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = f"Tue, 02 Jan 2024 09:{minute:02d}:00 +0000"
    message["Message-ID"] = f"<m{minute}@test>"
    message.set_content(body)
    return message.as_bytes()


def invoice_raw() -> bytes:
    message = EmailMessage()
    message["From"] = "billing@alpha.test"
    message["To"] = "larry@beta.test"
    message["Subject"] = "Invoice 7"
    message["Date"] = "Tue, 02 Jan 2024 09:05:00 +0000"
    message["Message-ID"] = "<invoice7@test>"
    message.set_content("Your invoice: pay at https://example.com/pay?id=7\n")
    message.add_alternative(
        "<html><body><p>Your <b>invoice</b>.</p>"
        '<a href="https://example.com/pay?id=7">Pay</a>'
        '<a href="https://example.com/help">Help</a></body></html>',
        subtype="html",
    )
    message.add_attachment(
        b"%PDF-1.4 fake invoice", maintype="application", subtype="pdf", filename="invoice.pdf"
    )
    for number, part in enumerate(p for p in message.walk() if p.is_multipart()):
        part.set_boundary(f"boundary-{number}")  # the default is random; snapshots show it
    return message.as_bytes()


def _submitted(at: float, sender: str, rcpts: list[str], queue_id: str) -> Hop:
    detail = {
        "server": "submission.localhost",
        "client": "127.0.0.1:50000",
        "helo": "app.local",
        "auth_user": "app",
        "tls": False,
        "mail_from": sender,
        "rcpt_to": rcpts,
        "queue_id": queue_id,
    }
    return Hop("submitted", "accepted", detail, at)


def _route(at: float, domain: str, address: str) -> list[Hop]:
    where = {"domain": domain, "host": f"mx.{domain}", "address": address, "port": 2525}
    return [
        Hop(
            "dns",
            "mx",
            {"domain": domain, "query": f"{domain} MX", "answer": f"10 mx.{domain}"},
            at,
        ),
        Hop(
            "dns",
            "address",
            {"domain": domain, "query": f"mx.{domain} A", "answer": address},
            at + 0.002,
        ),
        Hop("connect", "connected", where, at + 0.004),
    ]


async def _attempt(
    store: SqliteStore,
    message_id: int,
    *,
    state: str,
    reply: str,
    hops: list[Hop],
    next_at: float,
    recipients: tuple[str, ...] = (),
) -> None:
    (delivery,) = await store.deliveries_of(message_id)
    await store.finish_attempt(
        delivery,
        state=state,
        recipients=recipients,
        next_attempt_at=next_at,
        last_reply=reply,
        hops=hops,
    )


async def fill(store: SqliteStore) -> dict[str, Any]:
    """Every kind of message the list shows; returns their ids by name."""
    ids: dict[str, Any] = {}
    t = BASE
    # 1. relayed and delivered: the Sent copy, and larry's copy at beta.test
    raw = _raw("mikaela@alpha.test", "larry@beta.test", "Quarterly report", "Numbers inside.", 0)
    sent = await store.ingest(
        NewMessage(
            raw=raw,
            envelope_from="mikaela@alpha.test",
            envelope_to=("larry@beta.test",),
            source="submission",
            copies=(Copy("mikaela@alpha.test", "Sent", flags=("\\Seen",)),),
            hops=(
                _submitted(t, "mikaela@alpha.test", ["larry@beta.test"], "aaaaaaaaaaaa"),
                Hop(
                    "queued",
                    "queued",
                    {"domain": "beta.test", "recipients": ["larry@beta.test"]},
                    t + 0.001,
                ),
                Hop(
                    "stored",
                    "sent copy",
                    {"mailbox": "mikaela@alpha.test", "folder": "Sent"},
                    t + 0.001,
                ),
            ),
            received_at=t,
            queue_id="aaaaaaaaaaaa",
            deliveries=(NewDelivery("beta.test", ("larry@beta.test",)),),
        )
    )
    relayed = await store.ingest(
        NewMessage(
            raw=b"Received: from mx.alpha.test by mx.beta.test\r\n" + raw,
            envelope_from="mikaela@alpha.test",
            envelope_to=("larry@beta.test",),
            source="mx.beta.test",
            copies=(Copy("larry@beta.test"),),
            hops=(
                Hop(
                    "received",
                    "accepted",
                    {
                        "server": "mx.beta.test",
                        "mail_from": "mikaela@alpha.test",
                        "rcpt_to": ["larry@beta.test"],
                        "tls": True,
                        "helo": "mx.alpha.test",
                    },
                    t + 0.020,
                ),
                Hop(
                    "stored",
                    "delivered",
                    {"mailbox": "larry@beta.test", "folder": "INBOX", "domain": "beta.test"},
                    t + 0.021,
                ),
            ),
            received_at=t + 0.02,
            queue_id="bbbbbbbbbbbb",
            parent_queue_id="aaaaaaaaaaaa",
        )
    )
    await _attempt(
        store,
        sent.message_id,
        state="delivered",
        reply="250 2.0.0 OK: queued as bbbbbbbbbbbb",
        next_at=t + 0.03,
        hops=[
            *_route(t + 0.010, "beta.test", "127.0.0.12"),
            Hop(
                "smtp",
                "delivered",
                {
                    "domain": "beta.test",
                    "host": "mx.beta.test",
                    "address": "127.0.0.12",
                    "port": 2525,
                    "reply": "250 2.0.0 OK: queued as bbbbbbbbbbbb",
                },
                t + 0.025,
            ),
            Hop(
                "relay",
                "delivered",
                {
                    "domain": "beta.test",
                    "attempt": 1,
                    "reply": "250 2.0.0 OK: queued as bbbbbbbbbbbb",
                },
                t + 0.026,
            ),
        ],
    )
    ids["sent"] = sent.copies[0].entry_id
    ids["relayed"] = relayed.copies[0].entry_id

    # 2. bounced: ann's message to a user gamma.test refuses, and the DSN back to ann
    t = BASE + 60
    raw = _raw("ann@alpha.test", "nobody@gamma.test", "Hello nobody", "Is anyone there?", 1)
    bounced = await store.ingest(
        NewMessage(
            raw=raw,
            envelope_from="ann@alpha.test",
            envelope_to=("nobody@gamma.test",),
            source="submission",
            copies=(Copy("ann@alpha.test", "Sent", flags=("\\Seen",)),),
            hops=(
                _submitted(t, "ann@alpha.test", ["nobody@gamma.test"], "cccccccccccc"),
                Hop(
                    "queued",
                    "queued",
                    {"domain": "gamma.test", "recipients": ["nobody@gamma.test"]},
                    t + 0.001,
                ),
            ),
            received_at=t,
            queue_id="cccccccccccc",
            deliveries=(NewDelivery("gamma.test", ("nobody@gamma.test",)),),
        )
    )
    refused = "550 5.1.1 <nobody@gamma.test>: no such user"
    await _attempt(
        store,
        bounced.message_id,
        state="bounced",
        reply=refused,
        next_at=t + 0.03,
        hops=[
            *_route(t + 0.010, "gamma.test", "127.0.0.13"),
            Hop(
                "smtp",
                "bounced",
                {
                    "domain": "gamma.test",
                    "host": "mx.gamma.test",
                    "address": "127.0.0.13",
                    "port": 2525,
                    "reply": refused,
                },
                t + 0.020,
            ),
            Hop(
                "relay",
                "bounced",
                {"domain": "gamma.test", "attempt": 1, "reply": refused},
                t + 0.021,
            ),
            Hop(
                "bounce",
                "generated",
                {"failed": ["nobody@gamma.test"], "queue_id": "dddddddddddd"},
                t + 0.022,
            ),
            Hop(
                "bounce",
                "sent",
                {"domain": "gamma.test", "to": "ann@alpha.test", "queue_id": "dddddddddddd"},
                t + 0.023,
            ),
        ],
    )
    dsn = await store.ingest(
        NewMessage(
            raw=(
                b"From: Mail Delivery System <MAILER-DAEMON@submission.localhost>\r\n"
                b"To: ann@alpha.test\r\nSubject: Undelivered Mail Returned to Sender\r\n"
                b"Date: Tue, 02 Jan 2024 09:01:00 +0000\r\n\r\n"
                b"nobody@gamma.test: 550 5.1.1 no such user\r\n"
            ),
            envelope_from="",
            envelope_to=("ann@alpha.test",),
            source="mx.alpha.test",
            copies=(Copy("ann@alpha.test"),),
            hops=(
                Hop(
                    "stored",
                    "delivered",
                    {"mailbox": "ann@alpha.test", "folder": "INBOX"},
                    t + 0.05,
                ),
            ),
            received_at=t + 0.05,
        )
    )
    ids["bounced"] = bounced.copies[0].entry_id
    ids["dsn"] = dsn.copies[0].entry_id

    # 3. deferred: greylisted at gamma.test, waiting for its retry
    t = BASE + 120
    raw = _raw("ann@alpha.test", "bob@gamma.test", "Lunch?", "Noon at the usual place.", 2)
    deferred = await store.ingest(
        NewMessage(
            raw=raw,
            envelope_from="ann@alpha.test",
            envelope_to=("bob@gamma.test",),
            source="submission",
            copies=(Copy("ann@alpha.test", "Sent", flags=("\\Seen",)),),
            hops=(_submitted(t, "ann@alpha.test", ["bob@gamma.test"], "eeeeeeeeeeee"),),
            received_at=t,
            queue_id="eeeeeeeeeeee",
            deliveries=(NewDelivery("gamma.test", ("bob@gamma.test",)),),
        )
    )
    grey = "451 4.7.1 Greylisted, try again in 5 seconds"
    await _attempt(
        store,
        deferred.message_id,
        state="deferred",
        reply=grey,
        next_at=t + 5.0,
        recipients=("bob@gamma.test",),
        hops=[
            *_route(t + 0.010, "gamma.test", "127.0.0.13"),
            Hop("smtp", "deferred", {"domain": "gamma.test", "reply": grey}, t + 0.02),
            Hop(
                "relay",
                "deferred",
                {"domain": "gamma.test", "attempt": 1, "reply": grey, "retry_in_seconds": 5.0},
                t + 0.021,
            ),
        ],
    )
    ids["deferred"] = deferred.copies[0].entry_id

    # 4. held: a recipient outside the sandbox
    t = BASE + 180
    raw = _raw("mikaela@alpha.test", "ceo@example.com", "Board deck", "Attached soon.", 3)
    held = await store.ingest(
        NewMessage(
            raw=raw,
            envelope_from="mikaela@alpha.test",
            envelope_to=("ceo@example.com",),
            source="submission",
            copies=(Copy("ceo@example.com", held=True),),
            hops=(
                _submitted(t, "mikaela@alpha.test", ["ceo@example.com"], "ffffffffffff"),
                Hop(
                    "stored",
                    "held",
                    {
                        "mailbox": "ceo@example.com",
                        "folder": "INBOX",
                        "reason": "example.com is not a sandbox domain: kept here",
                    },
                    t + 0.001,
                ),
            ),
            received_at=t,
        )
    )
    ids["held"] = held.copies[0].entry_id

    # 5. HTML with an attachment and links, straight into larry's INBOX
    t = BASE + 300
    invoice = await store.ingest(
        NewMessage(
            raw=invoice_raw(),
            envelope_from="billing@alpha.test",
            envelope_to=("larry@beta.test",),
            source="mx.beta.test",
            copies=(Copy("larry@beta.test"),),
            hops=(
                Hop("stored", "delivered", {"mailbox": "larry@beta.test", "folder": "INBOX"}, t),
            ),
            received_at=t,
        )
    )
    ids["invoice"] = invoice.copies[0].entry_id

    # The journal: DNS queries and SMTP sessions, and a fault on beta.test.
    for n in range(3):
        store.journal(
            "dns.query",
            {
                "client": "127.0.0.1:40000",
                "transport": "udp",
                "qname": "mx.beta.test.",
                "qtype": "A" if n else "MX",
                "rcode": "NOERROR",
                "answer": "10 mx.beta.test." if not n else "127.0.0.12",
                "micros": 100,
                "fault": None,
            },
            BASE + n,
        )
    store.journal(
        "dns.query",
        {
            "client": "127.0.0.1:40001",
            "transport": "tcp",
            "qname": "nope.gamma.test.",
            "qtype": "A",
            "rcode": "NXDOMAIN",
            "answer": "",
            "micros": 90,
            "fault": None,
        },
        BASE + 10,
    )
    store.journal(
        "smtp.session",
        {
            "server": "submission",
            "peer": "127.0.0.1:50000",
            "helo": "app.local",
            "auth_user": "app",
            "tls": False,
            "messages": 1,
            "started_at": BASE,
            "transcript": [
                "S: 220 submission.localhost ESMTP mail-sandbox",
                "C: EHLO app.local",
                "S: 250 HELP",
                "C: MAIL FROM:<mikaela@alpha.test>",
                "S: 250 OK",
                "C: QUIT",
                "S: 221 Bye",
            ],
        },
        BASE + 1,
    )
    await store.set_chaos(
        "beta.test",
        {
            "mx": {
                "mode": "greylist",
                "code": None,
                "stage": "rcpt",
                "seconds": 5.0,
                "delay_ms": 0,
                "per_minute": 10,
                "probability": 1.0,
                "message": None,
            },
            "dns": None,
        },
    )
    await store.write(_noop)  # the journal rows are committed after this
    return ids


async def _noop(conn: object) -> None:
    return None
