"""POP3 download benchmark: one client fetches a whole maildrop (LIST, UIDL, RETR of all).

The sandbox's POP3 server runs in its own process over a store filled beforehand; this
process is only the poplib client. With ``--dovecot`` the same messages are served from a
Maildir by a throwaway, unprivileged Dovecot (``dovecot -F`` on free ports, stopped at the
end), and the runs alternate between the two servers so that noise from the rest of the
machine hits both alike; the ratio is sandbox / Dovecot.

    python tests/bench/pop3_download.py --messages 10000 --runs 5 [--dovecot]
        [--profile FILE (cProfile) | --py-spy FILE (py-spy raw, for flamegraph.pl)]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import grp
import json
import os
import poplib
import pwd
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
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


PHASES = ("login", "list", "uidl", "retr", "quit")


def download(port: int, user: str, expect: int) -> dict[str, float]:
    """Seconds for each phase of one whole download, and ``total``."""
    marks = [time.perf_counter()]
    box = poplib.POP3("127.0.0.1", port, timeout=60)
    box.user(user)
    box.pass_("pw")
    marks.append(time.perf_counter())
    _, listing, _ = box.list()
    marks.append(time.perf_counter())
    box.uidl()
    marks.append(time.perf_counter())
    for line in listing:
        box.retr(int(line.split()[0]))
    marks.append(time.perf_counter())
    box.quit()
    marks.append(time.perf_counter())
    if len(listing) != expect:
        raise SystemExit(f"expected {expect} messages, the server listed {len(listing)}")
    times = {name: marks[i + 1] - marks[i] for i, name in enumerate(PHASES)}
    times["total"] = marks[-1] - marks[0]
    return times


def py_spy(pid: int, out: str) -> Callable[[], None]:
    """Sample a process with py-spy until the returned function is called."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    cmd = [exe, "record", "--pid", str(pid), "--rate", "250", "--format", "raw", "-o", out]
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    time.sleep(1)  # attached

    def finish() -> None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        spy.wait(30)

    return finish


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


# --- Dovecot, the yardstick (imap_fetch.py uses this section too) --------------------------

DOVECOT_MISSING = (
    "dovecot is not installed, so there is nothing to compare with:"
    " apt-get install dovecot-pop3d dovecot-imapd"
)
DOVECOT_CONF = """\
# Dovecot 2.3, a throwaway unprivileged instance: plaintext POP3 and IMAP on 127.0.0.1.
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = pop3 imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
default_login_user = {user}
default_internal_user = {user}
default_internal_group = {group}
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:{root}/Maildir
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home
}}
service pop3-login {{
  chroot =
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process_tree_cpu(pid: int) -> float | None:
    """CPU seconds of a process, its reaped children and its live children (Linux /proc)."""

    def stat(p: int | str) -> list[str] | None:
        try:
            return Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None

    own = stat(pid)
    if own is None:
        return None
    ticks = sum(int(v) for v in own[11:15])  # utime stime cutime cstime
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and entry.name != str(pid):
            fields = stat(entry.name)
            if fields is not None and fields[1] == str(pid):
                ticks += sum(int(v) for v in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


class Dovecot:
    """Dovecot's POP3 and IMAP over a Maildir of the given messages, in a temp directory.

    Started with ``dovecot -F -c CONF`` as a child process and stopped (with everything
    it spawned) on exit. As root it runs as ``nobody``: Dovecot refuses to run its login
    processes as root, and a benchmark needs no privileges. Files are stored as Dovecot's
    own delivery stores them: LF line endings, sizes (S=) and wire sizes (W=) in the name.
    """

    def __init__(self, messages: Sequence[bytes]) -> None:
        as_root = os.geteuid() == 0
        account = pwd.getpwnam("nobody") if as_root else pwd.getpwuid(os.getuid())
        self.user, self.uid, self.gid = account.pw_name, account.pw_uid, account.pw_gid
        self.root = Path(tempfile.mkdtemp(prefix="dovecot-bench-"))
        self.pop3_port = 0
        self.imap_port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._fill(messages)

    def _fill(self, messages: Sequence[bytes]) -> None:
        maildir = self.root / "Maildir"
        for sub in ("Maildir/cur", "Maildir/new", "Maildir/tmp", "run", "state", "home"):
            (self.root / sub).mkdir(parents=True)
        for index, raw in enumerate(messages):
            stored = raw.replace(b"\r\n", b"\n")
            wire = len(stored) + stored.count(b"\n")
            name = f"{1_700_000_000 + index}.M{index}P1.bench,S={len(stored)},W={wire}:2,"
            (maildir / "cur" / name).write_bytes(stored)
        if os.geteuid() == 0:
            for folder, dirs, files in os.walk(self.root):
                for name in dirs + files:
                    os.chown(os.path.join(folder, name), self.uid, self.gid)
            os.chown(self.root, self.uid, self.gid)

    def __enter__(self) -> Dovecot:
        exe = shutil.which("dovecot")
        if exe is None:
            shutil.rmtree(self.root, ignore_errors=True)
            raise SystemExit(DOVECOT_MISSING)
        self.pop3_port, self.imap_port = free_port(), free_port()
        conf = self.root / "dovecot.conf"
        conf.write_text(
            DOVECOT_CONF.format(
                root=self.root,
                user=self.user,
                group=grp.getgrgid(self.gid).gr_name,
                uid=self.uid,
                gid=self.gid,
                pop3_port=self.pop3_port,
                imap_port=self.imap_port,
            )
        )
        as_root = os.geteuid() == 0
        self._proc = subprocess.Popen(
            [exe, "-F", "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C reaches us, and we stop it
            user=self.uid if as_root else None,
            group=self.gid if as_root else None,
            extra_groups=[] if as_root else None,
        )
        deadline = time.monotonic() + 15
        waiting = [self.pop3_port, self.imap_port]
        while waiting:
            if self._proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log_tail()
                self.__exit__()
                raise SystemExit(f"dovecot did not start; its log ends:\n{tail}")
            try:
                socket.create_connection(("127.0.0.1", waiting[0]), timeout=1).close()
                waiting.pop(0)
            except OSError:
                time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()  # the master stops every process it started
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def cpu_seconds(self) -> float | None:
        return None if self._proc is None else process_tree_cpu(self._proc.pid)

    def log_tail(self, lines: int = 10) -> str:
        try:
            text = (self.root / "dovecot.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def summary(
    name: str, messages: int, runs: list[dict[str, float]], cpu: list[float]
) -> dict[str, object]:
    totals = [r["total"] for r in runs]
    median = statistics.median(totals)
    return {
        "server": name,
        "messages": messages,
        "runs": [round(t, 3) for t in totals],
        "median_s": round(median, 3),
        "us_per_message": round(median / messages * 1e6, 1),
        "phases_median_s": {p: round(statistics.median(r[p] for r in runs), 4) for p in PHASES},
        **({"server_cpu_s": round(statistics.median(cpu), 3)} if cpu else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dovecot", action="store_true", help="also time Dovecot, side by side")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the server into FILE")
    parser.add_argument("--py-spy", metavar="FILE", help="run the server under py-spy record")
    parser.add_argument("--data", help="reuse this data file (filled on first use)")
    parser.add_argument("--serve", metavar="DATA", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.profile)
        return
    if args.dovecot and shutil.which("dovecot") is None:
        raise SystemExit(DOVECOT_MISSING)

    with tempfile.TemporaryDirectory(prefix="pop3-bench-") as tmp, contextlib.ExitStack() as stack:
        root = Path(tmp)
        t0 = time.perf_counter()
        messages = make_messages(args.messages)
        total = sum(len(m) for m in messages)
        data = Path(args.data) if args.data else root / "bench.sqlite3"
        if not data.exists():
            asyncio.run(fill_store(data, messages))
            print(
                f"filled {args.messages} messages ({total / args.messages:.0f} bytes average,"
                f" {total / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s",
                flush=True,
            )

        server_cmd = [sys.executable, __file__, "--serve", str(data)]
        if args.profile:
            server_cmd += ["--profile", args.profile]
        proc, ready = start(server_cmd, cwd=ROOT)
        stack.callback(stop, proc)
        if args.py_spy:
            stack.callback(py_spy(proc.pid, args.py_spy))
        sandbox_port = int(ready["pop3"][1])  # type: ignore[index]
        servers: dict[str, tuple[int, Callable[[], float | None]]] = {
            "mail-sandbox": (sandbox_port, lambda: process_tree_cpu(proc.pid)),
        }
        if args.dovecot:
            dovecot = stack.enter_context(Dovecot(messages))
            servers["dovecot"] = (dovecot.pop3_port, dovecot.cpu_seconds)

        results: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
        cpu: dict[str, list[float]] = {name: [] for name in servers}
        for _ in range(args.runs):
            for name, (port, cpu_of) in servers.items():  # alternate: noise hits both alike
                before = cpu_of()
                results[name].append(download(port, USER, args.messages))
                time.sleep(0.2)  # let the server finish the session (and Dovecot reap it)
                after = cpu_of()
                if before is not None and after is not None:
                    cpu[name].append(after - before)

    rows = {name: summary(name, args.messages, r, cpu[name]) for name, r in results.items()}
    for row in rows.values():
        print(json.dumps(row))
    if "dovecot" in rows:
        ours, theirs = rows["mail-sandbox"], rows["dovecot"]
        ratio = {"ratio_sandbox_to_dovecot": _ratio(ours["median_s"], theirs["median_s"])}
        if "server_cpu_s" in ours and "server_cpu_s" in theirs:
            ratio["server_cpu_ratio"] = _ratio(ours["server_cpu_s"], theirs["server_cpu_s"])
        print(json.dumps(ratio))


def _ratio(a: object, b: object) -> float | None:
    assert isinstance(a, float) and isinstance(b, float)
    return round(a / b, 2) if b else None


if __name__ == "__main__":
    main()
