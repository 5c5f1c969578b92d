"""The relay: workers that take due deliveries from the persistent queue and deliver them.

Theory of operation: the queue lives in SQLite (table ``deliveries``), written in the same
transaction as the message, so a 250 from the submission server means the delivery is
queued for good. One scheduler task picks due deliveries, at most ``concurrency`` at a
time, and each attempt ends with one write: the new state, the hops it made, and when to
try again. A new delivery wakes the scheduler at once; otherwise it sleeps until the next
one is due, looking at the store at least every ``POLL_SECONDS`` so that a
``mail-sandbox queue --retry-now`` from another process is seen. Deliveries still in the
queue when the process stops simply resume on the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
import time
from collections import deque
from collections.abc import Callable

import dns.asyncresolver

from sandbox.config import Config
from sandbox.events import DeliveriesQueued, Event, EventBus
from sandbox.headers import return_path
from sandbox.mime import received_count
from sandbox.relay.client import Attempt, ConnectionCache, Envelope, deliver
from sandbox.relay.dsn import build_dsn, reports_due
from sandbox.relay.routing import NoRoute, Route, find_route
from sandbox.store import (
    BOUNCED,
    DEFERRED,
    DELIVERED,
    INBOX,
    Copy,
    Delivery,
    Hop,
    NewDelivery,
    NewMessage,
    Outcome,
    SqliteStore,
    Step,
    domain_of,
)
from sandbox.store import dsn as dsn_store
from sandbox.store.dsn import DeliveryDsn
from sandbox.trace import local_received_header

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
READ_AHEAD = 200
ROUTE_SECONDS = 5.0
STOP_GRACE_SECONDS = 2.0


class Relay:
    def __init__(
        self,
        config: Config,
        store: SqliteStore,
        bus: EventBus,
        resolver: Callable[[], dns.asyncresolver.Resolver],
        mx_addresses: dict[str, str],
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.bus = bus
        self._resolver = resolver
        self._mx_addresses = mx_addresses  # domain → where its MX server really listens
        # Chaos "auth-spf-outside" (sandbox.auth): connect from elsewhere to this domain.
        self.source_for: Callable[[str], str | None] = lambda domain: None
        self._tls = tls_context
        self._wake = asyncio.Event()
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._ready: deque[Delivery] = deque()  # due, read ahead, not started yet
        self._routes: dict[str, tuple[Route, float]] = {}
        self._task: asyncio.Task[None] | None = None
        self._connections = ConnectionCache()
        self._stopping = False
        bus.listen(self._on_event)

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._schedule())

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._inflight:  # let attempts under way finish, so their outcome is recorded
            await asyncio.wait(list(self._inflight.values()), timeout=STOP_GRACE_SECONDS)
        for task in list(self._inflight.values()):
            task.cancel()
        self._inflight.clear()
        self._connections.close_all()

    def forget_connections(self) -> None:
        """Chaos changed a server's behaviour: the next delivery must meet it afresh."""
        self._connections.close_all()
        self._routes.clear()

    async def _route(self, domain: str) -> Route | NoRoute:
        """A domain's route, remembered for ``ROUTE_SECONDS`` as an MTA's resolver would.

        Resolving costs more than the rest of a delivery over a reused connection; the
        hops of a remembered route say ``cached``. Failures are never remembered.
        """
        now = time.monotonic()
        known = self._routes.get(domain)
        if known is not None and now - known[1] < ROUTE_SECONDS:
            hops = tuple(
                Hop(h.step, h.outcome, {**h.detail, "cached": True}) for h in known[0].hops
            )
            return Route(known[0].targets, hops)
        route = await find_route(self._resolver(), domain, self.config.mx.port)
        if isinstance(route, Route):
            self._routes[domain] = (route, now)
        return route

    def wake(self) -> None:
        self._wake.set()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, DeliveriesQueued):
            self._wake.set()

    # --- scheduling -------------------------------------------------------------------

    async def _schedule(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self._start_due()
                timeout = await self._sleep_for()
            except Exception:  # the store is busy or closing; look again shortly
                log.exception("relay: could not read the queue")
                timeout = POLL_SECONDS
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that arrives as the wait ends, and stop() would then wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _start_due(self) -> None:
        """Start due deliveries up to the concurrency, from a batch read ahead of time.

        Reading the queue costs a sort over every waiting delivery; doing it once per
        ``READ_AHEAD`` deliveries instead of once per finished attempt was most of the
        relay's time with thousands queued.
        """
        if not self._ready:
            batch = await self.store.due_deliveries(time.time(), READ_AHEAD, self._inflight)
            self._ready.extend(batch)
        loop = asyncio.get_running_loop()
        while self._ready and len(self._inflight) < self.config.relay.concurrency:
            delivery = self._ready.popleft()
            if delivery.id not in self._inflight:
                self._inflight[delivery.id] = loop.create_task(self._attempt(delivery))

    async def _sleep_for(self) -> float:
        """Until the next delivery not already under way is due; an ending attempt wakes us."""
        if self._ready or len(self._inflight) >= self.config.relay.concurrency:
            return POLL_SECONDS
        due = await self.store.next_attempt_at(exclude=self._inflight)
        if due is None:
            return POLL_SECONDS
        return min(POLL_SECONDS, max(0.0, due - time.time()))

    # --- one attempt ------------------------------------------------------------------

    async def _attempt(self, delivery: Delivery) -> None:
        try:
            await self._attempt_once(delivery)
        except Exception as exc:  # never lose the delivery: record the failure and retry
            log.exception("relay: delivery %s failed unexpectedly", delivery.id)
            with contextlib.suppress(Exception):
                await self._finish(
                    delivery,
                    Attempt(deferred=delivery.recipients, reply=f"451 4.3.0 relay error: {exc}"),
                    [],
                )
        finally:
            self._inflight.pop(delivery.id, None)
            self._wake.set()

    async def _attempt_once(self, delivery: Delivery) -> None:
        raw = await self.store.raw(delivery.message_id)
        if raw is None:  # cleared while queued: nothing left to deliver
            return
        received = received_count(raw)
        if received > self.config.relay.max_received:
            reply = f"554 5.4.6 mail loop: the message has {received} Received: headers"
            hop = Hop(Step.RELAY, Outcome.LOOP, {"domain": delivery.domain, "reply": reply})
            attempt = Attempt(bounced=tuple((r, reply) for r in delivery.recipients), reply=reply)
            await self._finish(delivery, attempt, [hop], raw=raw)
            return
        route = await self._route(delivery.domain)
        if isinstance(route, NoRoute):
            if route.permanent:
                attempt = Attempt(
                    bounced=tuple((r, route.reply) for r in delivery.recipients), reply=route.reply
                )
            else:
                attempt = Attempt(deferred=delivery.recipients, reply=route.reply)
            await self._finish(delivery, attempt, list(route.hops), raw=raw)
            return
        envelope = Envelope(
            sender=delivery.envelope_from,
            recipients=delivery.recipients,
            raw=raw,
            helo=self._helo(delivery.envelope_from),
            source_address=self.source_for(delivery.domain)
            or self._source_address(delivery.envelope_from),
        )
        attempt = await deliver(envelope, route, delivery.domain, self._tls, self._connections)
        await self._finish(delivery, attempt, list(route.hops), raw=raw)

    async def _finish(
        self, delivery: Delivery, attempt: Attempt, hops: list[Hop], raw: bytes | None = None
    ) -> None:
        now = time.time()
        number = delivery.attempts + 1
        schedule = self.config.relay.retry_schedule
        deferred = attempt.deferred
        bounced = list(attempt.bounced)
        if deferred and number > len(schedule):
            reason = f"{attempt.reply} (gave up after {number} attempts)"
            bounced += [(rcpt, reason) for rcpt in deferred]
            deferred = ()
        if deferred:
            state, next_at = DEFERRED, now + schedule[number - 1]
        else:
            state, next_at = (DELIVERED if attempt.delivered else BOUNCED), now
        summary: dict[str, object] = {
            "domain": delivery.domain,
            "attempt": number,
            "reply": attempt.reply,
        }
        if deferred:
            summary["retry_in_seconds"] = round(next_at - now, 3)
        all_hops = [*hops, *attempt.hops, Hop(Step.RELAY, state, summary)]
        dsn = await dsn_store.of_delivery(self.store, delivery.id)
        reports: list[NewMessage] = []
        for action, entries in reports_due(
            dsn,
            delivered=attempt.delivered,
            reply=attempt.reply,
            first_deferral=deferred if number == 1 else (),
            bounced=bounced,
        ):
            report, report_hops = self._bounce(
                delivery, entries, attempt.remote, raw, action=action, params=dsn
            )
            reports += [report] if report is not None else []
            all_hops += report_hops
        # One commit for the outcome and the reports it owes (a crash loses neither),
        # then DeliveryAttempted and the reports' own events are announced.
        await self.store.finish_attempt(
            delivery,
            state=state,
            recipients=deferred,
            next_attempt_at=next_at,
            last_reply=attempt.reply,
            hops=all_hops,
            reports=reports,
        )

    # --- bounces ----------------------------------------------------------------------

    def _bounce(
        self,
        delivery: Delivery,
        failures: list[tuple[str, str]],
        remote: str | None,
        raw: bytes | None,
        action: str = "failed",
        params: DeliveryDsn | None = None,
    ) -> tuple[NewMessage | None, list[Hop]]:
        """The RFC 3464 report to store (bounce, delay or success) and the hops it adds."""
        params = params or DeliveryDsn()
        step = Step.BOUNCE if action == "failed" else Step.REPORT
        sender = delivery.envelope_from
        if not sender:
            # RFC 5321 §4.5.5 and RFC 3464: a bounce is never bounced (no mail loops).
            reason = "the failed message was itself a bounce"
            return None, [
                Hop(Step.BOUNCE, Outcome.NOT_SENT, {"domain": delivery.domain, "reason": reason})
            ]
        reporting = self.config.smtp.hostname
        queue_id = secrets.token_hex(6)
        dsn = build_dsn(
            original=raw or b"",
            sender=sender,
            reporting_mta=reporting,
            failures=failures,
            remote_mta=remote,
            arrival=delivery.created_at,
            action=action,
            ret=params.ret,
            envid=params.envid,
            original_recipients={r: params.orcpt(r) for r, _ in failures},
            retry_until=delivery.created_at + sum(self.config.relay.retry_schedule),
        )
        raw_dsn = local_received_header(by=reporting, queue_id=queue_id, recipients=[sender]) + dsn
        sender_domain = domain_of(sender)
        fake = self.config.is_fake_domain(sender_domain)
        hops = [
            Hop(
                step,
                Outcome.GENERATED,
                {
                    action: [r for r, _ in failures],
                    "queue_id": queue_id,
                    "about": delivery.message_id,
                },
            )
        ]
        if fake:
            hops.append(
                Hop(Step.QUEUED, Outcome.QUEUED, {"domain": sender_domain, "recipients": [sender]})
            )
        else:
            hops.append(
                Hop(
                    Step.STORED,
                    Outcome.HELD,
                    {
                        "mailbox": sender,
                        "folder": INBOX,
                        "reason": f"{sender_domain} is not a sandbox domain",
                    },
                )
            )
        message = NewMessage(
            raw=raw_dsn if fake else return_path("") + raw_dsn,  # held: final delivery
            envelope_from="",
            envelope_to=(sender,),
            source="relay",
            copies=() if fake else (Copy(sender, INBOX, held=True),),
            hops=tuple(hops),
            queue_id=queue_id,
            deliveries=(NewDelivery(sender_domain, (sender,)),) if fake else (),
        )
        sent = Hop(
            step, Outcome.SENT, {"domain": delivery.domain, "to": sender, "queue_id": queue_id}
        )
        return message, [sent]

    # --- who we are on the wire -------------------------------------------------------

    def _helo(self, sender: str) -> str:
        """The sending domain's outbound host name, as a real MTA would EHLO."""
        domain = domain_of(sender) if sender else ""
        if self.config.is_fake_domain(domain):
            return f"mx.{domain}"
        return self.config.smtp.hostname

    def _source_address(self, sender: str) -> str | None:
        """Connect from the sending domain's own address, so PTR names it in Received:."""
        domain = domain_of(sender) if sender else ""
        return self._mx_addresses.get(domain)
