"""POP3 download benchmark: one client fetches a whole maildrop (LIST, UIDL, RETR of all).

The sandbox's POP3 server runs in its own process over a store filled beforehand; this
process is only the poplib client. With ``--dovecot`` and Dovecot installed, the same
messages are served from a Maildir by Dovecot's POP3 in the same run, as the yardstick.

    python tests/bench/pop3_download.py --messages 10000 --runs 3 [--dovecot] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import poplib
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

USER = "larry@beta.test"
WORDS = [
    "invoice",
    "order",
    "shipped",
    "tomorrow",
    "meeting",
    "agenda",
    "please",
    "review",
    "attached",
    "report",
    "quarterly",
    "numbers",
    "team",
    "update",
    "release",
    "notes",
    "deploy",
    "staging",
    "customer",
    "feedback",
    "thanks",
    "regards",
]


def make_message(index: int, rng: random.Random) -> bytes:
    """2-5 KB, plain or multipart/alternative; every 50th carries a small attachment."""
    msg = EmailMessage()
    msg["From"] = f"App {index % 7} <noreply{index % 7}@myapp.example>"
    msg["To"] = USER
    msg["Subject"] = f"Message {index}: " + " ".join(rng.choices(WORDS, k=5))
    msg["Date"] = "Mon, 23 Nov 2026 12:00:00 +0000"
    msg["Message-ID"] = f"<{index}.bench@myapp.example>"
    lines = [" ".join(rng.choices(WORDS, k=rng.randint(8, 14))) for _ in range(rng.randint(20, 55))]
    if index % 13 == 0:
        lines.insert(3, ".a line that starts with a dot (dot-stuffed on the wire)")
    text = "\n".join(lines) + "\n"
    msg.set_content(text)
    if index % 3 == 0:
        msg.add_alternative(
            "<html><body><p>" + "</p><p>".join(lines[:10]) + "</p></body></html>", subtype="html"
        )
    if index % 50 == 0:
        msg.add_attachment(
            rng.randbytes(1500),
            maintype="application",
            subtype="octet-stream",
            filename=f"report-{index}.bin",
        )
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def make_messages(count: int) -> list[bytes]:
    rng = random.Random(1939)
    return [make_message(i, rng) for i in range(count)]


async def fill_store(data: Path, messages: list[bytes]) -> None:
    from sandbox.store import Copy, NewMessage, SqliteStore

    store = await SqliteStore.open(str(data))
    try:
        for start in range(0, len(messages), 500):
            await asyncio.gather(
                *(
                    store.ingest(
                        NewMessage(raw, "noreply@myapp.example", (USER,), "bench", (Copy(USER),))
                    )
                    for raw in messages[start : start + 500]
                )
            )
    finally:
        await store.close()


def serve(data: str, profile: str | None) -> None:
    """The sandbox's POP3 server alone over an existing store (the --serve mode)."""
    from sandbox.config import load_config
    from sandbox.pop3 import StorePop3Backend, start_pop3_server
    from sandbox.store import SqliteStore

    async def main() -> None:
        store = await SqliteStore.open(data)
        config = load_config(env={}, flags={"data": data})
        server = await start_pop3_server(
            StorePop3Backend(store, config), host="127.0.0.1", port=0, hostname="bench.localhost"
        )
        print(json.dumps({"event": "ready", "pop3": list(server.address)}), flush=True)
        try:
            await asyncio.to_thread(sys.stdin.read)  # until the parent closes our stdin
        finally:
            await server.close()
            await store.close()

    if profile:
        import cProfile

        cProfile.runctx(
            "asyncio.run(main())", globals(), {"main": main, "asyncio": asyncio}, profile
        )
    else:
        asyncio.run(main())


def download(port: int, user: str, password: str, expect: int) -> tuple[float, int]:
    """Seconds for the whole download, and octets received."""
    started = time.perf_counter()
    box = poplib.POP3("127.0.0.1", port, timeout=60)
    box.user(user)
    box.pass_(password)
    _, listing, _ = box.list()
    box.uidl()
    octets = 0
    for line in listing:
        number = int(line.split()[0])
        octets += box.retr(number)[2]
    box.quit()
    elapsed = time.perf_counter() - started
    if len(listing) != expect:
        raise SystemExit(f"expected {expect} messages, the server listed {len(listing)}")
    return elapsed, octets


def cpu_seconds(pid: int) -> float | None:
    """User+system CPU of a process so far (Linux /proc), to separate server cost from noise."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(cmd: list[str], **kw: object) -> tuple[subprocess.Popen[str], dict[str, object]]:
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, **kw)  # type: ignore[call-overload]
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise SystemExit(f"{cmd[0]} did not start")
    return proc, json.loads(line)


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- Dovecot, when installed ---------------------------------------------------------------

DOVECOT_CONF = """\
# Dovecot 2.3 syntax, unprivileged, plaintext POP3 on 127.0.0.1 only.
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
default_login_user = {user}
default_internal_user = {user}
mail_location = maildir:{root}/Maildir
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = static
  args = password=pw
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home
}}
service pop3-login {{
  chroot =
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port}
  }}
}}
service anvil {{
  chroot =
}}
"""


def dovecot_start(root: Path, messages: list[bytes]) -> tuple[subprocess.Popen[str], int]:
    import getpass
    import socket

    maildir = root / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    for index, raw in enumerate(messages):
        # Dovecot serves Maildir files with LF endings and adds the CRs on the wire.
        (maildir / "cur" / f"{1_700_000_000 + index}.M{index}P1.bench:2,").write_bytes(
            raw.replace(b"\r\n", b"\n")
        )
    for sub in ("run", "state", "home"):
        (root / sub).mkdir(exist_ok=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    conf = root / "dovecot.conf"
    conf.write_text(
        DOVECOT_CONF.format(
            root=root, user=getpass.getuser(), uid=os.getuid(), gid=os.getgid(), port=port
        )
    )
    exe = shutil.which("dovecot")
    assert exe is not None
    proc = subprocess.Popen([exe, "-F", "-c", str(conf)], stdin=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"dovecot did not start; see {root / 'dovecot.log'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dovecot", action="store_true", help="also time Dovecot if installed")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the server into FILE")
    parser.add_argument("--serve", metavar="DATA", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.profile)
        return

    with tempfile.TemporaryDirectory(prefix="pop3-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        messages = make_messages(args.messages)
        total = sum(len(m) for m in messages)
        data = root / "bench.sqlite3"
        asyncio.run(fill_store(data, messages))
        print(
            f"filled {args.messages} messages ({total / args.messages:.0f} bytes average,"
            f" {total / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s"
        )

        results: dict[str, list[float]] = {"mail-sandbox": []}
        server_cpu: list[float] = []
        server_cmd = [sys.executable, __file__, "--serve", str(data)]
        if args.profile:
            server_cmd += ["--profile", args.profile]
        proc, ready = start(server_cmd, cwd=ROOT)
        port = int(ready["pop3"][1])  # type: ignore[index]
        try:
            for _ in range(args.runs):
                before = cpu_seconds(proc.pid)
                seconds, _octets = download(port, USER, "pw", args.messages)
                after = cpu_seconds(proc.pid)
                results["mail-sandbox"].append(seconds)
                if before is not None and after is not None:
                    server_cpu.append(after - before)
        finally:
            stop(proc)

        if args.dovecot:
            if shutil.which("dovecot") is None:
                print("dovecot: not installed, skipped (apt-get install dovecot-pop3d to compare)")
            else:
                dproc, dport = dovecot_start(root / "dovecot", messages)
                results["dovecot"] = []
                try:
                    for _ in range(args.runs):
                        results["dovecot"].append(download(dport, "bench", "pw", args.messages)[0])
                finally:
                    dproc.terminate()
                    dproc.wait(10)

        for name, runs in results.items():
            median = statistics.median(runs)
            print(
                json.dumps(
                    {
                        "server": name,
                        "messages": args.messages,
                        "runs": [round(r, 3) for r in runs],
                        "median_s": round(median, 3),
                        "us_per_message": round(median / args.messages * 1e6, 1),
                        **(
                            {"server_cpu_s": round(statistics.median(server_cpu), 3)}
                            if name == "mail-sandbox" and server_cpu
                            else {}
                        ),
                    }
                )
            )


if __name__ == "__main__":
    main()
