"""The sandbox's own certificate authority, so TLS listeners work with clients that verify.

Theory of operation: on first use a CA (trustme) and a server certificate signed by it are
written next to the data file. Users trust ``ca.pem`` once; later starts reuse both. The
server certificate alone is issued again when it no longer covers every wanted name and
address (a domain was added) or expires within 30 days; the CA is never replaced unless
its files are gone or unreadable, so the user's trust survives.

Files: ``ca.pem`` (public), ``ca.key`` (0600), ``server.pem`` (leaf then CA certificate),
``server.key`` (0600).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import shutil
import ssl
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.config import MEMORY

if TYPE_CHECKING:  # imported where used: `mail-sandbox ca` with the CA made needs neither
    import trustme
    from cryptography import x509

DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")
RENEW_BEFORE = datetime.timedelta(days=30)
# Apple platforms refuse TLS server certificates valid for more than 825 days; 397 is
# what public CAs issue, so clients treat ours like any other.
SERVER_VALIDITY = datetime.timedelta(days=397)
CA_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
SERVER_FILE = "server.pem"
SERVER_KEY_FILE = "server.key"


class TLSError(RuntimeError):
    """The certificate files could not be made or read; the message says what to do."""


def tls_directory(data: str) -> Path | None:
    """Where a sandbox with this data file keeps its CA; None for ``:memory:``."""
    if data == MEMORY:
        return None
    return Path(data).expanduser().resolve().parent


class SandboxTLS:
    """A CA and a server certificate in ``directory``, made once and reused.

    ``directory=None`` uses a private temporary folder, removed by ``close()`` (for an
    in-memory sandbox, whose CA lives as long as it does).
    """

    def __init__(self, directory: Path | None, identities: Iterable[str] = ()) -> None:
        self._owned_dir: Path | None = None
        if directory is None:
            directory = Path(tempfile.mkdtemp(prefix="mail-sandbox-tls-"))
            self._owned_dir = directory
        self.directory = directory
        self.identities = _canonical([*DEFAULT_NAMES, *identities])
        self._server_ctx: ssl.SSLContext | None = None
        self._client_ctx: ssl.SSLContext | None = None
        self.regenerated: set[str] = set()  # which files this load wrote, for tests and logs
        self._ensure()

    @classmethod
    def for_data(cls, data: str, identities: Iterable[str] = ()) -> SandboxTLS:
        return cls(tls_directory(data), identities)

    @property
    def ca_path(self) -> Path:
        return self.directory / CA_FILE

    @property
    def cert_path(self) -> Path:
        return self.directory / SERVER_FILE

    @property
    def key_path(self) -> Path:
        return self.directory / SERVER_KEY_FILE

    def server_context(self) -> ssl.SSLContext:
        """TLS 1.2 or later, server side, no client certificates asked for."""
        if self._server_ctx is None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(self.cert_path, self.key_path)
            self._server_ctx = ctx
        return self._server_ctx

    def client_context(self) -> ssl.SSLContext:
        """Verifies peers against the sandbox CA only (a cafile replaces the system store)."""
        if self._client_ctx is None:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_path))
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            self._client_ctx = ctx
        return self._client_ctx

    def close(self) -> None:
        """Remove the temporary folder of an in-memory sandbox; files on disk stay."""
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
            self._owned_dir = None

    # --- making and checking the files -----------------------------------------------

    def _ensure(self) -> None:
        import trustme

        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            ca = self._load_ca()
            if ca is None:
                ca = trustme.CA(organization_name="mail-sandbox")
                _write(self.directory / CA_KEY_FILE, ca.private_key_pem.bytes(), 0o600)
                _write(self.ca_path, ca.cert_pem.bytes(), 0o644)
                self.regenerated.add(CA_FILE)
                # a new CA makes any old server certificate worthless
                self._issue(ca)
            elif not self._server_cert_fits(ca.cert_pem.bytes()):
                self._issue(ca)
        except OSError as exc:
            raise TLSError(
                f"cannot write the sandbox's TLS files in {self.directory}: "
                f"{exc.strerror or exc}; check the folder's permissions or pass another --data"
            ) from None

    def _load_ca(self) -> trustme.CA | None:
        import trustme

        try:
            cert = self.ca_path.read_bytes()
            key = (self.directory / CA_KEY_FILE).read_bytes()
        except FileNotFoundError:
            return None
        try:
            return trustme.CA.from_pem(cert, key)
        except ValueError as exc:
            raise TLSError(
                f"{self.ca_path} or its key is damaged ({exc}); delete both files to make a new"
                " CA (clients must then trust the new ca.pem)"
            ) from None

    def _server_cert_fits(self, ca_pem: bytes) -> bool:
        from cryptography import x509
        from cryptography.exceptions import InvalidSignature

        try:
            leaf = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
            key_ok = self.key_path.stat().st_size > 0
        except (OSError, ValueError):
            return False
        ca_cert = x509.load_pem_x509_certificate(ca_pem)
        if not key_ok or leaf.issuer != ca_cert.subject:
            return False
        try:
            leaf.verify_directly_issued_by(ca_cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        now = datetime.datetime.now(datetime.UTC)
        if leaf.not_valid_after_utc - now < RENEW_BEFORE:
            return False
        return set(self.identities) <= _covered(leaf)

    def _issue(self, ca: trustme.CA) -> None:
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        leaf = ca.issue_cert(
            *self.identities,
            common_name="mail-sandbox",
            not_before=now - datetime.timedelta(days=1),
            not_after=now + SERVER_VALIDITY,
        )
        _write(self.key_path, leaf.private_key_pem.bytes(), 0o600)
        _write(self.cert_path, b"".join(blob.bytes() for blob in leaf.cert_chain_pems), 0o644)
        self.regenerated.add(SERVER_FILE)
        self._server_ctx = None


def _canonical(identities: Iterable[str]) -> list[str]:
    """Lower-cased names and compressed addresses, once each, in the order given."""
    seen: dict[str, None] = {}
    for identity in identities:
        text = identity.strip().rstrip(".").lower()
        if not text:
            continue
        with contextlib.suppress(ValueError):
            text = str(ipaddress.ip_address(text))
        seen.setdefault(text, None)
    return list(seen)


def _covered(cert: x509.Certificate) -> set[str]:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    names = {name.lower() for name in san.get_values_for_type(x509.DNSName)}
    addresses = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return names | addresses


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically with the final permissions from the start (keys are never 0644)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)  # the umask may have narrowed it; keys must not be wider
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
