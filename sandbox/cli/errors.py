"""How the CLI fails: one line on stderr, exit 2 for bad input, 1 for everything else."""

from __future__ import annotations

USAGE = 2
FAILURE = 1


class CliExit(Exception):
    """Stop the command with this exit code, printing ``message`` (if any) on stderr."""

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def bad_input(message: str) -> CliExit:
    return CliExit(USAGE, message)


def failure(message: str) -> CliExit:
    return CliExit(FAILURE, message)
