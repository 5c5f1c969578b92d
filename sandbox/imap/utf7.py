"""Modified UTF-7 for mailbox names (RFC 3501 §5.1.3).

Printable US-ASCII other than "&" stands for itself, "&" is written "&-", and every
other run of characters is UTF-16BE in base64 with "," instead of "/", between "&" and
"-". Names travel in this form on the wire and are stored decoded.
"""

from __future__ import annotations

import base64


class Utf7Error(ValueError):
    """A mailbox name that is not valid modified UTF-7; ``hint`` says what is wrong."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def encode(name: str) -> str:
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = "".join(pending).encode("utf-16-be")
            b64 = base64.b64encode(data).decode("ascii").rstrip("=").replace("/", ",")
            out.append("&" + b64 + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def decode(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if not 0x20 <= ord(char) <= 0x7E:
            raise Utf7Error(
                f"mailbox names are 7-bit on the wire: {text!r}", "it holds 8-bit characters"
            )
        if char != "&":
            out.append(char)
            i += 1
            continue
        end = text.find("-", i + 1)
        if end < 0:
            raise Utf7Error(
                f"unterminated &-sequence in {text!r}", "an & starts a sequence never ended by -"
            )
        chunk = text[i + 1 : end]
        if not chunk:
            out.append("&")
        else:
            b64 = chunk.replace(",", "/")
            b64 += "=" * (-len(b64) % 4)
            try:
                data = base64.b64decode(b64, validate=True)
                decoded = data.decode("utf-16-be")
            except (ValueError, UnicodeDecodeError) as exc:
                raise Utf7Error(
                    f"bad &-sequence in {text!r}", f"&{chunk}- is not base64 of UTF-16"
                ) from exc
            # RFC 3501 §5.1.3: encoded runs never hold printable ASCII.
            if any(0x20 <= ord(c) <= 0x7E for c in decoded):
                raise Utf7Error(
                    f"printable ASCII inside an &-sequence in {text!r}",
                    f"&{chunk}- encodes printable ASCII, which must be written as itself",
                )
            out.append(decoded)
        i = end + 1
    name = "".join(out)
    # One spelling per name: two runs in a row, or stray bits after the last character,
    # decode to something that encodes differently (RFC 3501 §5.1.3).
    if encode(name) != text:
        raise Utf7Error(
            f"non-canonical modified UTF-7 in {text!r}",
            "it is not how modified UTF-7 writes this name (two &...- runs in a row,"
            " or stray bits at the end of one)",
        )
    return name
