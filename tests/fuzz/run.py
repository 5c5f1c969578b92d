"""Coverage-guided fuzzing (atheris) of the POP3 codec, the IMAP parser and the DNS handler.

    pip install atheris
    python tests/fuzz/run.py pop3 --seconds 60      # or imap, dns; or all

Each target runs in its own process for the set time; a crash (any exception) is saved as
crash-* in the working directory with the input that caused it, and the run exits non-zero.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def fuzz_one(target: str, argv: list[str]) -> None:
    import atheris

    sys.path[:0] = [str(ROOT), str(HERE)]
    with atheris.instrument_imports():
        import harness

    func = harness.TARGETS[target]
    atheris.Setup([sys.argv[0], *argv], lambda data: func(bytes(data)))
    atheris.Fuzz()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=["pop3", "imap", "dns", "all"])
    parser.add_argument("--seconds", type=int, default=60, help="per target")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child:
        fuzz_one(args.target, rest)
        return
    targets = ["pop3", "imap", "dns"] if args.target == "all" else [args.target]
    failed = []
    for target in targets:
        print(f"fuzzing {target} for {args.seconds}s", flush=True)
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                target,
                "--child",
                f"-max_total_time={args.seconds}",
                "-max_len=4096",
                "-print_final_stats=1",
            ],
            cwd=Path.cwd(),
        )
        if done.returncode != 0:
            failed.append(target)
    if failed:
        raise SystemExit(f"crashes in: {', '.join(failed)} (inputs saved as crash-* files)")
    print("no crash in " + ", ".join(targets))


if __name__ == "__main__":
    main()
