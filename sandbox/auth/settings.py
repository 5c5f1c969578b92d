"""A fake domain's authentication settings: ``[domains."NAME".auth]`` in the TOML.

Pure data and checks (no crypto, no DNS), so loading the configuration stays cheap for
every CLI command. Problems are reported through the caller's ``fail(key, problem)``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

POLICIES = ("none", "quarantine", "reject")
ALIGNMENTS = ("r", "s")
KEY_TYPES = ("rsa", "ed25519")
DEFAULT_SELECTOR = "sandbox"
# RFC 6376 §3.1: a selector is one or more labels (sub-domain syntax).
_SELECTOR_RE = re.compile(
    r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
_SPF_TERM_RE = re.compile(r"^[!-~]+$")
_ED25519_SPKI_LENGTH = 44  # 12 bytes of DER header, then the 32-byte key

Fail = Callable[[str, str], NoReturn]


@dataclass(frozen=True)
class AppKey:
    """A public key an app signs with itself, published at ``selector._domainkey``.

    ``public_key`` is the base64 of the ``p=`` tag (RFC 6376 §3.6.1): for RSA the DER
    SubjectPublicKeyInfo, for Ed25519 the raw 32 bytes (RFC 8463 §4).
    """

    selector: str
    public_key: str
    type: str = "rsa"

    def record(self) -> str:
        return f"v=DKIM1; k={self.type}; p={self.public_key}"


@dataclass(frozen=True)
class DomainAuth:
    """SPF, DKIM and DMARC for one fake domain.

    ``sign``: the submission server DKIM-signs unsigned mail from this domain (RSA at
    ``selector``, Ed25519 at ``selector-ed25519``); off leaves signing to the app.
    ``dmarc``: the ``p=`` of ``_dmarc.<domain>``; ``adkim``/``aspf`` its alignment modes.
    ``spf_extra``: terms added to the domain's SPF record before ``-all``.
    ``keys``: public keys of apps that sign their own mail.
    """

    sign: bool = True
    selector: str = DEFAULT_SELECTOR
    dmarc: str = "none"
    adkim: str = "r"
    aspf: str = "r"
    spf_extra: tuple[str, ...] = ()
    keys: tuple[AppKey, ...] = ()

    @property
    def ed25519_selector(self) -> str:
        return f"{self.selector}-ed25519"

    def dmarc_record(self) -> str:
        """RFC 7489 §6.3: ``v`` and ``p`` first, the alignment modes after."""
        return f"v=DMARC1; p={self.dmarc}; adkim={self.adkim}; aspf={self.aspf}"

    def is_default(self) -> bool:
        return self == DomainAuth()


_AUTH_KEYS = {"sign", "selector", "dmarc", "adkim", "aspf", "spf_extra", "keys"}


def parse_auth(value: Any, key: str, fail: Fail) -> DomainAuth:
    """Check one ``auth = { … }`` table."""
    if not isinstance(value, dict):
        fail(key, 'expected a table like { dmarc = "reject", selector = "mail" }')
    for unknown in sorted(set(value) - _AUTH_KEYS):
        fail(f"{key}.{unknown}", f"unknown setting; known: {', '.join(sorted(_AUTH_KEYS))}")
    sign = value.get("sign", True)
    if not isinstance(sign, bool):
        fail(f"{key}.sign", "expected true (the sandbox signs) or false (the app signs)")
    selector = _selector(value.get("selector", DEFAULT_SELECTOR), f"{key}.selector", fail)
    dmarc = _choice(value.get("dmarc", "none"), POLICIES, f"{key}.dmarc", fail)
    adkim = _choice(value.get("adkim", "r"), ALIGNMENTS, f"{key}.adkim", fail)
    aspf = _choice(value.get("aspf", "r"), ALIGNMENTS, f"{key}.aspf", fail)
    extra = value.get("spf_extra", [])
    if not isinstance(extra, list) or not all(
        isinstance(t, str) and _SPF_TERM_RE.match(t) for t in extra
    ):
        fail(f"{key}.spf_extra", 'expected a list of SPF terms like ["ip4:192.0.2.1", "a"]')
    keys = value.get("keys", [])
    if not isinstance(keys, list):
        fail(f"{key}.keys", 'expected a list like [{ selector = "app", public_key = "MIIB…" }]')
    app_keys = tuple(_app_key(item, f"{key}.keys[{i}]", fail) for i, item in enumerate(keys))
    return DomainAuth(sign, selector, dmarc, adkim, aspf, tuple(extra), app_keys)


def auth_table(auth: DomainAuth) -> dict[str, Any]:
    """The ``auth`` table again, loadable by ``parse_auth``."""
    return {
        "sign": auth.sign,
        "selector": auth.selector,
        "dmarc": auth.dmarc,
        "adkim": auth.adkim,
        "aspf": auth.aspf,
        "spf_extra": list(auth.spf_extra),
        "keys": [
            {"selector": k.selector, "public_key": k.public_key, "type": k.type} for k in auth.keys
        ],
    }


def _choice(value: Any, allowed: tuple[str, ...], key: str, fail: Fail) -> str:
    if not isinstance(value, str) or value.lower() not in allowed:
        fail(key, f"expected one of {', '.join(allowed)}, got {value!r}")
    return value.lower()


def _selector(value: Any, key: str, fail: Fail) -> str:
    if not isinstance(value, str) or not _SELECTOR_RE.match(value.lower()):
        fail(key, f"expected a selector like mail or s2024, got {value!r}")
    return value.lower()


def _app_key(item: Any, key: str, fail: Fail) -> AppKey:
    if not isinstance(item, dict) or set(item) - {"selector", "public_key", "type"}:
        fail(key, 'expected { selector = "app", public_key = "…", type = "rsa" }')
    selector = _selector(item.get("selector"), f"{key}.selector", fail)
    kind = _choice(item.get("type", "rsa"), KEY_TYPES, f"{key}.type", fail)
    text = item.get("public_key")
    if not isinstance(text, str):
        fail(f"{key}.public_key", "missing: the key's base64 (the p= of the DKIM record)")
    compact = "".join(
        line.strip() for line in text.splitlines() if line.strip() and "-----" not in line
    )
    try:
        decoded = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        fail(f"{key}.public_key", "not base64: paste the p= value or the PEM public key")
    if kind == "ed25519" and len(decoded) == _ED25519_SPKI_LENGTH:
        # A PEM Ed25519 key is SubjectPublicKeyInfo; RFC 8463 §4 publishes the raw 32 bytes.
        compact = base64.b64encode(decoded[-32:]).decode()
    return AppKey(selector, compact, kind)
