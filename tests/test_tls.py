"""The sandbox CA: made once, reused, server certificate reissued when names change."""

from __future__ import annotations

import datetime
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
import trustme
from cryptography import x509

from sandbox.tls import CA_KEY_FILE, SandboxTLS, tls_directory


def san(path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(ext.get_values_for_type(x509.DNSName)) | {
        str(ip) for ip in ext.get_values_for_type(x509.IPAddress)
    }


def test_made_once_then_reused(tmp_path: Path) -> None:
    first = SandboxTLS(tmp_path, ["mx.beta.test", "127.0.0.12"])
    assert first.regenerated == {"ca.pem", "server.pem"}
    ca, server = first.ca_path.read_bytes(), first.cert_path.read_bytes()
    again = SandboxTLS(tmp_path, ["MX.Beta.Test.", "127.0.0.12"])
    assert again.regenerated == set(), "valid files are loaded, not remade"
    assert again.ca_path.read_bytes() == ca and again.cert_path.read_bytes() == server
    assert san(again.cert_path) == {"localhost", "127.0.0.1", "::1", "mx.beta.test", "127.0.0.12"}
    for secret in (again.key_path, tmp_path / CA_KEY_FILE):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_new_name_reissues_the_server_certificate_but_keeps_the_ca(tmp_path: Path) -> None:
    first = SandboxTLS(tmp_path, ["mx.beta.test"])
    ca = first.ca_path.read_bytes()
    grown = SandboxTLS(tmp_path, ["mx.beta.test", "mx.delta.test", "127.0.0.14"])
    assert grown.regenerated == {"server.pem"}
    assert grown.ca_path.read_bytes() == ca
    assert {"mx.delta.test", "127.0.0.14", "mx.beta.test"} <= san(grown.cert_path)


def test_expiring_or_foreign_server_certificate_is_reissued(tmp_path: Path) -> None:
    tls = SandboxTLS(tmp_path)
    ca = trustme.CA.from_pem(tls.ca_path.read_bytes(), (tmp_path / CA_KEY_FILE).read_bytes())
    soon = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + datetime.timedelta(days=5)
    leaf = ca.issue_cert("localhost", "127.0.0.1", "::1", not_after=soon)
    tls.cert_path.write_bytes(leaf.cert_chain_pems[0].bytes())
    assert SandboxTLS(tmp_path).regenerated == {"server.pem"}
    other = trustme.CA().issue_cert("localhost", "127.0.0.1", "::1")
    tls.cert_path.write_bytes(other.cert_chain_pems[0].bytes())
    assert SandboxTLS(tmp_path).regenerated == {"server.pem"}


def test_memory_sandbox_uses_a_temporary_folder(tmp_path: Path) -> None:
    assert tls_directory(":memory:") is None
    assert tls_directory(str(tmp_path / "x.sqlite3")) == tmp_path.resolve()
    tls = SandboxTLS.for_data(":memory:")
    folder = tls.directory
    assert tls.ca_path.exists()
    tls.close()
    assert not folder.exists()


def handshake(tls: SandboxTLS, connect_to: str, server_hostname: str) -> str:
    """A real TLS echo over a socket; returns what came back."""
    family = socket.AF_INET6 if ":" in connect_to else socket.AF_INET
    listener = socket.socket(family)
    listener.bind((connect_to, 0))
    listener.listen(1)
    server_ctx = tls.server_context()

    def serve() -> None:
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tconn:
            tconn.sendall(tconn.recv(100))

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        port = listener.getsockname()[1]
        with (
            socket.create_connection((connect_to, port), timeout=10) as raw,
            tls.client_context().wrap_socket(raw, server_hostname=server_hostname) as conn,
        ):
            assert conn.version() in ("TLSv1.2", "TLSv1.3")
            conn.sendall(b"ping")
            return conn.recv(100).decode()
    finally:
        thread.join(10)
        listener.close()


@pytest.mark.parametrize(
    ("address", "name"),
    [("127.0.0.1", "localhost"), ("127.0.0.1", "127.0.0.1"), ("127.0.0.1", "mx.beta.test")],
)
def test_handshake_verifies_hostnames(tmp_path: Path, address: str, name: str) -> None:
    tls = SandboxTLS(tmp_path, ["mx.beta.test"])
    assert handshake(tls, address, name) == "ping"


def test_unlisted_name_fails_verification(tmp_path: Path) -> None:
    tls = SandboxTLS(tmp_path)
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake_client_only(tls, "mx.unknown.test")


def handshake_client_only(tls: SandboxTLS, name: str) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            tls.server_context().wrap_socket(conn, server_side=True).close()
        except (ssl.SSLError, OSError):
            conn.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with socket.create_connection(listener.getsockname(), timeout=10) as raw:
            tls.client_context().wrap_socket(raw, server_hostname=name).close()
    finally:
        thread.join(10)
        listener.close()
