"""``mail-sandbox queue`` and ``mail-sandbox chaos``: the relay queue and fault injection.

Both work through the data file, so they reach a sandbox running in another process:
the relay looks at the queue, and the servers at the chaos settings, every half second.
"""

from __future__ import annotations

import json
import time
from typing import Any

import click

from sandbox.chaos import AUTH_MODES, MX_MODES, STAGES, ChaosError, DomainChaos, MxFault, dns_fault
from sandbox.cli.errors import bad_input
from sandbox.cli.options import build_config, common_options, pop_common
from sandbox.cli.output import queue_table
from sandbox.cli.read import run_with_store
from sandbox.store import Delivery, SqliteStore
from sandbox.store.lookup import delivery_copies

DNS_MODES = ("dns-servfail", "dns-timeout", "dns-nxdomain", "dns-delay")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@click.option("--retry-now", is_flag=True, help="Make every waiting delivery due at once.")
@common_options
@click.pass_context
def queue(ctx: click.Context, /, as_json: bool, retry_now: bool, **kwargs: Any) -> None:
    """List relay deliveries not done yet (queued or deferred), oldest first."""
    config = build_config(ctx, pop_common(kwargs))

    async def work(store: SqliteStore) -> tuple[int, list[Delivery], dict[int, int]]:
        retried = await store.retry_now() if retry_now else 0
        pending = await store.pending_deliveries()
        return retried, pending, await delivery_copies(store, pending)

    retried, pending, copies = run_with_store(config, work, read_only=not retry_now)
    if retry_now:
        click.echo(
            f"{retried} deliver{'y' if retried == 1 else 'ies'} will be retried now", err=True
        )
    if not pending:
        click.echo("no deliveries waiting: every one is done", err=True)
    elif as_json:
        for delivery in pending:
            data = {**delivery.as_json(), "copy_id": copies.get(delivery.id)}
            click.echo(json.dumps(data, ensure_ascii=False))
    else:
        click.echo(queue_table(pending, copies, time.time()))


@click.command()
@click.argument("domain", required=False)
@click.argument("mode", required=False, metavar="[MODE]")
@click.option("--code", type=int, help="Reply code for reject (5xx) or tempfail (4xx).")
@click.option(
    "--stage",
    type=click.Choice(STAGES),
    default="rcpt",
    show_default=True,
    help="Where reject, tempfail and disconnect strike.",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="greylist: how long a new sender/recipient/client triplet waits.",
)
@click.option(
    "--ms", type=click.IntRange(min=0), default=0, help="delay / dns-delay: milliseconds."
)
@click.option(
    "--per-minute",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="ratelimit: messages a minute before 421.",
)
@click.option(
    "--probability",
    type=click.FloatRange(0, 1),
    default=1.0,
    show_default=True,
    help="Chance the fault strikes each time it could.",
)
@click.option("--message", help="Text of the reject/tempfail reply.")
@common_options
@click.pass_context
def chaos(
    ctx: click.Context,
    /,
    domain: str | None,
    mode: str | None,
    code: int | None,
    stage: str,
    seconds: float,
    ms: int,
    per_minute: int,
    probability: float,
    message: str | None,
    **kwargs: Any,
) -> None:
    """Make a domain's MX server or DNS misbehave; `chaos DOMAIN off` ends it.

    MODE is one of reject, tempfail, greylist, delay, disconnect, ratelimit (the MX
    server), dns-servfail, dns-timeout, dns-nxdomain, dns-delay (its DNS zone), or
    auth-forwarder, auth-spf-outside (mail to the domain arrives altered / from outside
    the sender's SPF), auth-txt-timeout, auth-no-key (the domain's own TXT lookups time
    out / its DKIM keys are gone).
    With no arguments, lists the faults in force.
    """
    config = build_config(ctx, pop_common(kwargs))
    if domain is None:
        current = run_with_store(config, lambda store: store.chaos(), read_only=True)
        for name, data in sorted(current.items()):
            click.echo(f"{name}: {DomainChaos.from_json(data).describe()}")
        return
    domain = domain.lower()
    if not config.is_fake_domain(domain):
        names = ", ".join(sorted(config.domain_names()))
        raise bad_input(f"{domain} is not a sandbox domain (these are: {names})")
    if mode is None:
        raise bad_input(
            f"say what {domain} should do: a MODE, or off (see mail-sandbox chaos --help)"
        )

    async def work(store: SqliteStore) -> DomainChaos:
        data = (await store.chaos()).get(domain)
        current = DomainChaos.from_json(data) if data else DomainChaos()
        updated = _updated(
            current, mode.lower(), code, stage, seconds, ms, per_minute, probability, message
        )
        await store.set_chaos(domain, updated.to_json() if updated.active else None)
        return updated

    updated = run_with_store(config, work)
    click.echo(f"{domain}: {updated.describe()} (a running sandbox applies it within a second)")


def _updated(
    current: DomainChaos,
    mode: str,
    code: int | None,
    stage: str,
    seconds: float,
    ms: int,
    per_minute: int,
    probability: float,
    message: str | None,
) -> DomainChaos:
    try:
        if mode == "off":
            return DomainChaos()
        if mode in DNS_MODES:
            return DomainChaos(current.mx, dns_fault(mode, ms), current.auth)
        if mode in MX_MODES:
            if mode == "delay" and ms <= 0:
                raise ChaosError("delay needs --ms with a delay above 0")
            fault = MxFault(mode, code, stage, seconds, ms, per_minute, probability, message)
            return DomainChaos(fault, current.dns, current.auth)
        if mode in AUTH_MODES:
            return DomainChaos(current.mx, current.dns, mode)
    except ChaosError as exc:
        raise bad_input(str(exc)) from None
    modes = ", ".join((*MX_MODES, *DNS_MODES, *AUTH_MODES, "off"))
    raise bad_input(f"unknown mode {mode!r}; use one of {modes}")
