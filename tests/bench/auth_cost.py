"""What authentication costs per message: signing at submission, checking at an MX.

Runs a sandbox in this process and times, on a 2 KB message, the submission server's
signature (Ed25519 and RSA 2048 with dkimpy) and an MX server's whole check (SPF, every
DKIM signature, ARC, DMARC, the stub asked over UDP, answers cached by TTL as in use)
for a message signed at a fake domain and for an unsigned one from outside every zone.
Prints the median and p90 of each.

    python tests/bench/auth_cost.py --runs 200
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from email.message import EmailMessage

from sandbox.auth.check import check_message
from sandbox.testing import Sandbox


def _message(sender: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "bob@beta.test"
    msg["Subject"] = "Your order"
    msg.set_content("Thanks for your order.\n" * 90)
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def _time(runs: int, work: Callable[[], object]) -> str:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    times.sort()
    median = statistics.median(times) * 1000
    p90 = times[int(len(times) * 0.9) - 1] * 1000
    return f"median {median:6.2f} ms  p90 {p90:6.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with Sandbox() as box:
        auth = box.runtime.auth
        assert auth is not None
        own = _message("orders@alpha.test")
        signed = auth.sign(own)
        outside = _message("noreply@myapp.example")

        def check(raw: bytes, sender: str) -> Callable[[], object]:
            return lambda: check_message(
                raw,
                client="127.0.0.11",
                helo="mx.alpha.test",
                mail_from=sender,
                authserv_id="mx.beta.test",
                lookup=auth.lookup(),
            )

        print(f"runs: {args.runs}, message {len(own)} bytes")
        print(f"sign (Ed25519 + RSA 2048)            {_time(args.runs, lambda: auth.sign(own))}")
        print(
            "check, signed at alpha.test          "
            + _time(args.runs, check(signed.prefix + own, "orders@alpha.test"))
        )
        print(
            "check, unsigned from outside a zone  "
            + _time(args.runs, check(outside, "noreply@myapp.example"))
        )


if __name__ == "__main__":
    main()
