"""The DKIM key pairs of the fake domains, made on first start and kept beside the data file.

Theory of operation, as for the TLS files: a folder ``dkim/`` next to the data file holds
one RSA 2048 key (RFC 6376 §3.3.3) and one Ed25519 key (RFC 8463) per domain, as PKCS#8
PEM with mode 0600. Later starts reuse them, so a DNS record copied elsewhere stays
right; a key that cannot be read is an error that says which file to delete. An
in-memory sandbox keeps its keys in a temporary folder removed on close.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from sandbox.tls import _write, tls_directory

KEY_FOLDER = "dkim"
RSA_BITS = 2048


class DkimKeyError(RuntimeError):
    """A key file could not be made or read; the message says what to do."""


@dataclass(frozen=True)
class DomainKeys:
    """One domain's two signing keys and their DNS records, worked out once at load."""

    domain: str
    rsa_pem: bytes
    ed25519_seed: bytes  # base64 of the 32-byte private seed: what dkimpy signs with
    rsa_record: str
    ed25519_record: str

    @classmethod
    def from_pem(cls, domain: str, rsa_pem: bytes, ed25519_pem: bytes) -> DomainKeys:
        # Our own files: skip OpenSSL's RSA consistency check, which costs ~0.1 s a key.
        rsa_key = serialization.load_pem_private_key(
            rsa_pem, password=None, unsafe_skip_rsa_key_validation=True
        )
        ed_key = serialization.load_pem_private_key(ed25519_pem, password=None)
        if not isinstance(rsa_key, rsa.RSAPrivateKey) or not isinstance(
            ed_key, ed25519.Ed25519PrivateKey
        ):
            raise ValueError("not an RSA and an Ed25519 key")
        der = rsa_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        raw_public = ed_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        seed = ed_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return cls(
            domain,
            rsa_pem,
            base64.b64encode(seed),
            f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}",
            f"v=DKIM1; k=ed25519; p={base64.b64encode(raw_public).decode()}",
        )


class KeyRing:
    """Every fake domain's keys, loaded or made once at start."""

    def __init__(self, directory: Path | None, domains: Iterable[str]) -> None:
        """Keys in ``directory`` (made there when missing), or in a temporary folder."""
        self._owned: Path | None = None
        if directory is None:
            directory = Path(tempfile.mkdtemp(prefix="mail-sandbox-dkim-"))
            self._owned = directory
        self.directory = directory
        self._keys = {domain: self._ensure(domain) for domain in domains}

    @classmethod
    def for_data(cls, data: str, domains: Iterable[str], key_dir: str = "") -> KeyRing:
        """``key_dir``, or the ``dkim`` folder beside the data file (temporary for
        ``:memory:``)."""
        if key_dir:
            return cls(Path(key_dir).expanduser(), domains)
        beside = tls_directory(data)
        return cls(beside / KEY_FOLDER if beside is not None else None, domains)

    def get(self, domain: str) -> DomainKeys | None:
        return self._keys.get(domain.lower())

    def close(self) -> None:
        if self._owned is not None:
            shutil.rmtree(self._owned, ignore_errors=True)
            self._owned = None

    def _ensure(self, domain: str) -> DomainKeys:
        rsa_path = self.directory / f"{domain}.rsa.key"
        ed_path = self.directory / f"{domain}.ed25519.key"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.directory.chmod(0o700)
            rsa_pem = _load_or_make(rsa_path, _new_rsa)
            ed_pem = _load_or_make(ed_path, _new_ed25519)
        except OSError as exc:
            raise DkimKeyError(
                f"cannot write the DKIM keys in {self.directory}: {exc.strerror or exc};"
                " check the folder's permissions or pass another --data"
            ) from None
        try:
            return DomainKeys.from_pem(domain, rsa_pem, ed_pem)
        except (ValueError, TypeError):
            raise DkimKeyError(
                f"{rsa_path} or {ed_path.name} is damaged; delete both and start again to"
                " make new keys (the domain's DKIM records change with them)"
            ) from None


def _load_or_make(path: Path, make: Callable[[], bytes]) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pem = make()
        _write(path, pem, 0o600)
        return pem


def _pkcs8(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _new_rsa() -> bytes:
    return _pkcs8(rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS))


def _new_ed25519() -> bytes:
    return _pkcs8(ed25519.Ed25519PrivateKey.generate())
