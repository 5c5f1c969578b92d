"""SPF, DKIM, DMARC across the fake domains: signed at submission, checked at each MX.

Real servers on port 0, real SMTP clients; signatures verified again independently with
dkimpy against the stub, asked over UDP.
"""

from __future__ import annotations

import base64
import imaplib
import json
import smtplib
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from email.message import EmailMessage
from importlib import resources
from pathlib import Path

import authres
import authres.dmarc
import dkim
import dns.message
import dns.query
import dns.resolver
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st

from sandbox.auth.settings import AppKey, DomainAuth
from sandbox.auth.verdicts import read_verdicts, render
from sandbox.config import Config, ConfigError, load_config, to_toml
from sandbox.domain_config import DnsRecord, RealDomain
from sandbox.testing import Message, Sandbox
from tests.conftest import clean_env, cli
from tests.test_cli_relay import wait_until


def _message(sender: str, to: str, subject: str, body: str = "Hello from the app.\n") -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '.')}@app.example>"
    msg.set_content(body)
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def _submit(sb: Sandbox, sender: str, to: str, raw: bytes) -> None:
    with smtplib.SMTP(*sb.smtp_address, timeout=10) as client:
        client.sendmail(sender, [to], raw)


def _stub_txt(sb: Sandbox, name: str) -> list[bytes]:
    """A TXT lookup straight to the stub over UDP: no resolver configuration at all."""
    host, port = sb.dns_address
    query = dns.message.make_query(name, "TXT")
    reply = dns.query.udp(query, host, port=port, timeout=5)
    return [b"".join(r.strings) for rrset in reply.answer for r in rrset]


def _independent_dkim(sb: Sandbox, raw: bytes) -> bool:
    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        found = _stub_txt(sb, name.decode())
        return found[0] if found else None

    return bool(dkim.verify(raw, dnsfunc=dnsfunc))


def _config(**auth: DomainAuth) -> Config:
    """The default domains, with ``auth`` settings for some (alpha_test=…)."""
    base = load_config(env={}, flags={})
    domains = tuple(
        replace(d, auth=auth.get(d.name.replace(".", "_"), d.auth)) for d in base.domains
    )
    return replace(base, domains=domains)


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture
def fresh(sb: Sandbox) -> Sandbox:
    sb.reset()
    return sb


def _auth(message: Message) -> dict[str, object]:
    [hop] = [h for h in message.journey if h.step == "authenticated"]
    return hop.detail


# --- the records ------------------------------------------------------------------------


def test_each_domain_publishes_spf_dkim_and_dmarc(sb: Sandbox) -> None:
    assert _stub_txt(sb, "alpha.test") == [b"v=spf1 ip4:127.0.0.11 -all"]
    assert _stub_txt(sb, "_dmarc.beta.test") == [b"v=DMARC1; p=none; adkim=r; aspf=r"]
    [rsa_key] = _stub_txt(sb, "sandbox._domainkey.alpha.test")
    [ed_key] = _stub_txt(sb, "sandbox-ed25519._domainkey.alpha.test")
    assert rsa_key.startswith(b"v=DKIM1; k=rsa; p=MIIB")  # a 2048-bit key's DER prefix
    assert ed_key.startswith(b"v=DKIM1; k=ed25519; p=")
    assert len(base64.b64decode(ed_key.split(b"p=")[1])) == 32  # RFC 8463 §4


def test_keys_are_made_once_beside_the_data_file_with_mode_0600(tmp_path: Path) -> None:
    data = tmp_path / "box.sqlite3"
    with Sandbox(data=str(data)) as first:
        record = _stub_txt(first, "sandbox._domainkey.beta.test")
    keys = sorted((tmp_path / "dkim").iterdir())
    assert [k.name for k in keys][:2] == ["alpha.test.ed25519.key", "alpha.test.rsa.key"]
    assert all(k.stat().st_mode & 0o777 == 0o600 for k in keys)
    with Sandbox(data=str(data)) as second:
        assert _stub_txt(second, "sandbox._domainkey.beta.test") == record


def test_dns_command_shows_the_dmarc_record(tmp_path: Path) -> None:
    data = tmp_path / "box.sqlite3"
    with Sandbox(data=str(data)) as box:
        port = box.dns_address[1]
        shown = cli("dns", "_dmarc.beta.test", "TXT", "--data", str(data), "--dns-port", str(port))
    assert shown.returncode == 0, shown.stderr
    assert "v=DMARC1; p=none" in shown.stdout


# --- the happy path ---------------------------------------------------------------------


def test_submitted_mail_is_signed_and_passes_everything(fresh: Sandbox) -> None:
    _submit(fresh, "app@alpha.test", "bob@beta.test", _message("app@alpha.test",
            "bob@beta.test", "welcome"))  # fmt: skip
    message = fresh.wait_for(to="bob@beta.test", subject="welcome")
    assert message.auth is not None
    assert (message.auth.spf, message.auth.dkim, message.auth.dmarc, message.auth.arc) == (
        "pass", "pass", "pass", "none",
    )  # fmt: skip
    assert message.auth.authserv_id == "mx.beta.test"
    header = message.headers["Authentication-Results"]
    assert header.startswith("mx.beta.test;")
    assert "spf=pass" in header and "dmarc=pass header.from=alpha.test" in header
    assert "header.s=sandbox-ed25519" in header and "header.a=rsa-sha256" in header
    steps = [(h.step, h.outcome) for h in message.journey]
    assert ("signed", "signed") in steps
    assert ("authenticated", "spf=pass dkim=pass dmarc=pass") in steps
    detail = _auth(message)
    assert detail["spf"]["record"] == "v=spf1 ip4:127.0.0.11 -all"
    assert [d["key"] for d in detail["dkim"]] == [
        "sandbox-ed25519._domainkey.alpha.test",
        "sandbox._domainkey.alpha.test",
    ]
    # Independently: dkimpy's own verify, its only DNS the stub over UDP.
    assert _independent_dkim(fresh, message.raw)


def test_cli_show_and_json_carry_the_verdicts(tmp_path: Path) -> None:
    data = tmp_path / "box.sqlite3"
    with Sandbox(data=str(data)) as box:
        _submit(box, "app@alpha.test", "eve@gamma.test",
                _message("app@alpha.test", "eve@gamma.test", "cli view"))  # fmt: skip
        message = box.wait_for(to="eve@gamma.test")
    shown = cli("show", str(message.id), "--json", "--data", str(data))
    assert shown.returncode == 0, shown.stderr
    auth = json.loads(shown.stdout)["auth"]
    assert (auth["spf"], auth["dkim"], auth["dmarc"]) == ("pass", "pass", "pass")
    text = cli("show", str(message.id), "--data", str(data), env=clean_env())
    assert "Authentication (by mx.gamma.test):" in text.stdout
    assert "dmarc pass" in text.stdout


# --- failures, each as a real receiver reports it ---------------------------------------


def test_forwarder_that_alters_the_body_breaks_dkim(fresh: Sandbox) -> None:
    fresh.chaos("beta.test").auth("forwarder")
    _submit(fresh, "app@alpha.test", "bob@beta.test",
            _message("app@alpha.test", "bob@beta.test", "forwarded"))  # fmt: skip
    message = fresh.wait_for(to="bob@beta.test", subject="forwarded")
    assert message.auth is not None and message.auth.dkim == "fail"
    assert "body hash mismatch" in (message.auth.reasons.get("dkim") or "")
    # SPF still passes and is aligned, so DMARC passes: what real receivers conclude.
    assert (message.auth.spf, message.auth.dmarc) == ("pass", "pass")
    assert ("forwarded", "body altered") in [(h.step, h.outcome) for h in message.journey]
    assert not _independent_dkim(fresh, message.raw)
    # The forwarder sealed its change with ARC, and its record says DKIM passed before.
    assert message.auth.arc == "pass"
    assert "dkim=pass" in message.headers["ARC-Authentication-Results"]


def test_relay_from_outside_spf_fails_spf_but_dkim_keeps_dmarc(fresh: Sandbox) -> None:
    fresh.chaos("beta.test").auth("spf-outside")
    _submit(fresh, "app@alpha.test", "bob@beta.test",
            _message("app@alpha.test", "bob@beta.test", "stray relay"))  # fmt: skip
    message = fresh.wait_for(to="bob@beta.test", subject="stray relay")
    assert message.auth is not None
    assert (message.auth.spf, message.auth.dkim, message.auth.dmarc) == ("fail", "pass", "pass")
    assert _auth(message)["spf"]["client"] == "127.0.0.250"


def test_txt_lookup_timeout_is_temperror(fresh: Sandbox) -> None:
    fresh.chaos("alpha.test").auth("txt-timeout")
    _submit(fresh, "app@alpha.test", "bob@beta.test",
            _message("app@alpha.test", "bob@beta.test", "dns down"))  # fmt: skip
    message = fresh.wait_for(to="bob@beta.test", subject="dns down", timeout=30)
    assert message.auth is not None
    assert (message.auth.spf, message.auth.dkim, message.auth.dmarc) == (
        "temperror", "temperror", "temperror",
    )  # fmt: skip


def test_missing_key_is_permerror(fresh: Sandbox) -> None:
    fresh.chaos("alpha.test").auth("no-key")
    _submit(fresh, "app@alpha.test", "bob@beta.test",
            _message("app@alpha.test", "bob@beta.test", "no key"))  # fmt: skip
    message = fresh.wait_for(to="bob@beta.test", subject="no key")
    assert message.auth is not None
    assert message.auth.dkim == "permerror"
    assert "no key published at sandbox._domainkey.alpha.test" in str(_auth(message)["dkim"])
    assert (message.auth.spf, message.auth.dmarc) == ("pass", "pass")


def test_unsigned_mail_from_a_foreign_address_fails_or_has_none() -> None:
    """Directly at an MX from 127.0.0.1: SPF fail, no signature, DMARC fail (p=none)."""
    with Sandbox() as box:
        host, port = box.mx_addresses["beta.test"]
        with smtplib.SMTP(host, port, timeout=10) as client:
            client.sendmail("app@alpha.test", ["bob@beta.test"],
                            _message("app@alpha.test", "bob@beta.test", "direct"))  # fmt: skip
        message = box.wait_for(to="bob@beta.test")
        assert message.auth is not None
        assert (message.auth.spf, message.auth.dkim, message.auth.dmarc) == ("fail", "none", "fail")
        assert message.folder == "INBOX"  # p=none: monitor only


def test_p_reject_is_550_at_data_and_the_sender_gets_a_dsn() -> None:
    config = _config(alpha_test=DomainAuth(sign=False, dmarc="reject"))
    with Sandbox(config=config) as box:
        host, port = box.mx_addresses["beta.test"]
        with smtplib.SMTP(host, port, timeout=10) as client:
            client.ehlo("mx.alpha.test")
            client.mail("app@alpha.test")
            client.rcpt("bob@beta.test")
            code, reply = client.data(_message("app@alpha.test", "bob@beta.test", "direct"))
        assert code == 550 and reply.startswith(b"5.7.1 Rejected by the DMARC policy")
        # Through the relay from outside SPF: refused the same way, bounced to the sender.
        box.chaos("beta.test").auth("spf-outside")
        _submit(box, "app@alpha.test", "bob@beta.test",
                _message("app@alpha.test", "bob@beta.test", "stray rejected"))  # fmt: skip
        bounce = box.wait_for(to="app@alpha.test", subject="stray rejected", timeout=20)
        assert bounce.subject is not None and bounce.subject.startswith("Undelivered Mail")
        assert "5.7.1" in (bounce.text or "") or b"5.7.1" in bounce.raw
        assert all(m.subject != "stray rejected" for m in box.messages(to="bob@beta.test"))


def test_p_quarantine_files_the_message_in_junk() -> None:
    config = _config(alpha_test=DomainAuth(sign=False, dmarc="quarantine"))
    with Sandbox(config=config) as box:
        box.chaos("beta.test").auth("spf-outside")
        _submit(box, "app@alpha.test", "bob@beta.test",
                _message("app@alpha.test", "bob@beta.test", "suspicious"))  # fmt: skip
        message = box.wait_for(to="bob@beta.test", folder="Junk")
        assert message.auth is not None and message.auth.dmarc == "fail"
        assert ("quarantined", "junk") in [(h.step, h.outcome) for h in message.journey]


# --- an app that signs with its own key -------------------------------------------------


def test_app_signed_mail_verifies_and_one_changed_byte_does_not() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = AppKey("app2026", base64.b64encode(public).decode())
    config = _config(alpha_test=DomainAuth(sign=False, keys=(key,)))
    with Sandbox(config=config) as box:
        raw = _message("app@alpha.test", "bob@beta.test", "self signed")
        signed = dkim.sign(raw, b"app2026", b"alpha.test", pem) + raw
        _submit(box, "app@alpha.test", "bob@beta.test", signed)
        message = box.wait_for(to="bob@beta.test", subject="self signed")
        assert message.auth is not None and message.auth.dkim == "pass"
        assert "header.s=app2026" in message.headers["Authentication-Results"]
        assert ("signed", "kept") in [(h.step, h.outcome) for h in message.journey]

        tampered = signed.replace(b"Hello from the app.", b"Hello from the apP.")
        host, port = box.mx_addresses["beta.test"]
        with smtplib.SMTP(host, port, timeout=10) as client:
            client.ehlo("mx.alpha.test")
            client.sendmail("app@alpha.test", ["bob@beta.test"], tampered)
        [_, changed] = box.messages(to="bob@beta.test", subject="self signed")
        assert changed.auth is not None and changed.auth.dkim == "fail"
        assert "body hash mismatch" in (changed.auth.reasons.get("dkim") or "")


# --- held mail: a real domain's records pasted into the stub ------------------------------


def test_held_mail_from_a_real_domain_is_checked_against_its_pasted_records() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = base64.b64encode(
        private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    real = RealDomain(
        "realcompany.com",
        (
            DnsRecord("@", "TXT", "v=spf1 ip4:127.0.0.1 -all"),
            DnsRecord("prod._domainkey", "TXT", f"v=DKIM1; k=rsa; p={public}"),
            DnsRecord("_dmarc", "TXT", "v=DMARC1; p=reject"),
        ),
    )
    config = replace(_config(), real_domains=(real,))
    with Sandbox(config=config) as box:
        raw = _message("news@realcompany.com", "customer@gmail.com", "production setup")
        signed = dkim.sign(raw, b"prod", b"realcompany.com", pem) + raw
        _submit(box, "bounces@realcompany.com", "customer@gmail.com", signed)
        message = box.wait_for(to="customer@gmail.com")
        assert message.held
        assert message.auth is not None and message.auth.authserv_id == "submission.localhost"
        assert (message.auth.spf, message.auth.dkim, message.auth.dmarc) == ("pass",) * 3
        assert _stub_txt(box, "_dmarc.realcompany.com") == [b"v=DMARC1; p=reject"]

        broken = signed.replace(b"Hello from the app.", b"Hello from the app!")
        _submit(box, "bounces@realcompany.com", "customer@gmail.com", broken)
        [_, second] = box.messages(to="customer@gmail.com")
        assert second.auth is not None and second.auth.dkim == "fail"


# --- nothing ever asks the system resolver ------------------------------------------------


def test_verdicts_hold_with_the_system_resolver_dead(monkeypatch: pytest.MonkeyPatch) -> None:
    dead = dns.resolver.Resolver(configure=False)
    dead.nameservers = ["192.0.2.1"]  # TEST-NET-1: nothing answers there
    dead.lifetime = 0.2
    monkeypatch.setattr(dns.resolver, "default_resolver", dead)
    with Sandbox() as box:
        _submit(box, "app@alpha.test", "bob@beta.test",
                _message("app@alpha.test", "bob@beta.test", "offline"))  # fmt: skip
        message = box.wait_for(to="bob@beta.test")
    assert message.auth is not None
    assert (message.auth.spf, message.auth.dkim, message.auth.dmarc) == ("pass", "pass", "pass")


def test_read_verdicts_takes_the_topmost_header() -> None:
    raw = (
        b"Authentication-Results: mx.beta.test; spf=pass smtp.mailfrom=alpha.test;\r\n"
        b'\tdkim=fail reason="body hash mismatch" header.d=alpha.test; dmarc=pass\r\n'
        b"Authentication-Results: elsewhere.example; spf=fail\r\n"
        b"Subject: x\r\n\r\nbody\r\n"
    )
    verdicts = read_verdicts(raw)
    assert verdicts is not None
    assert (verdicts.authserv_id, verdicts.spf, verdicts.dkim, verdicts.dmarc) == (
        "mx.beta.test", "pass", "fail", "pass",
    )  # fmt: skip
    assert verdicts.reasons == {"dkim": "body hash mismatch"}
    assert read_verdicts(b"Subject: none\r\n\r\nbody\r\n") is None


# --- configuration ----------------------------------------------------------------------


def test_auth_settings_load_from_toml_and_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.toml"
    path.write_text(
        '[domains."shop.test".auth]\n'
        'dmarc = "reject"\nadkim = "s"\nselector = "mail"\nsign = false\n'
        'spf_extra = ["ip4:192.0.2.10"]\n'
        'keys = [{ selector = "app", public_key = "MFkwEwYHKoZIzj0CAQYI" }]\n'
        '[real_domains."realcompany.com"]\n'
        'records = [{ name = "_dmarc", type = "TXT", value = "v=DMARC1; p=none" }]\n'
    )
    config = load_config(config_file=str(path), env={})
    [shop] = config.domains
    assert shop.auth.dmarc_record() == "v=DMARC1; p=reject; adkim=s; aspf=r"
    assert (shop.auth.selector, shop.auth.ed25519_selector, shop.auth.sign) == (
        "mail", "mail-ed25519", False,
    )  # fmt: skip
    assert config.real_domains[0].records[0].value == "v=DMARC1; p=none"
    again = tmp_path / "again.toml"
    again.write_text(to_toml(config))
    assert load_config(config_file=str(again), env={}).domains == config.domains


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('dmarc = "block"', "domains.shop.test.auth.dmarc: expected one of none, quarantine"),
        ('selector = "a b"', "domains.shop.test.auth.selector: expected a selector"),
        ('keys = [{ selector = "app", public_key = "not base64!" }]', "not base64"),
        ("colour = 1", "domains.shop.test.auth.colour: unknown setting"),
    ],
)
def test_bad_auth_settings_say_which_key_and_why(tmp_path: Path, table: str, problem: str) -> None:
    path = tmp_path / "sandbox.toml"
    path.write_text(f'[domains."shop.test".auth]\n{table}\n')
    with pytest.raises(ConfigError) as error:
        load_config(config_file=str(path), env={})
    assert problem in str(error.value)


def test_every_mailbox_has_a_junk_folder_over_imap(sb: Sandbox) -> None:
    _submit(sb, "app@alpha.test", "junk.check@beta.test",
            _message("app@alpha.test", "junk.check@beta.test", "folders"))  # fmt: skip
    sb.wait_for(to="junk.check@beta.test")
    with imaplib.IMAP4(*sb.imap_address) as client:
        client.login("junk.check@beta.test", "x")
        status, lines = client.list()
    assert status == "OK"
    assert any(b"\\Junk" in line and line.endswith(b"Junk") for line in lines)


def test_the_junk_migration_reaches_mailboxes_made_before_it(tmp_path: Path) -> None:
    data = tmp_path / "old.sqlite3"
    with Sandbox(data=str(data)) as box:
        _submit(box, "app@alpha.test", "old@beta.test",
                _message("app@alpha.test", "old@beta.test", "before"))  # fmt: skip
        box.wait_for(to="old@beta.test")
    script = (resources.files("sandbox.store") / "migrations" / "0020_junk.sql").read_text()
    with sqlite3.connect(data) as conn:
        # As a data file from before the migration: mailboxes without Junk, no trigger.
        conn.execute("DELETE FROM folders WHERE name = 'Junk'")
        conn.execute("DROP TRIGGER mailbox_junk_folder")
        conn.executescript(script)
        rows = conn.execute(
            "SELECT m.address, f.special_use FROM folders f JOIN mailboxes m"
            " ON m.id = f.mailbox_id WHERE f.name = 'Junk' ORDER BY m.address"
        ).fetchall()
    assert ("old@beta.test", "\\Junk") in rows
    assert len(rows) >= 2  # the sender's mailbox too (its Sent copy made it)


def test_auth_chaos_from_the_command_line_reaches_a_running_sandbox(tmp_path: Path) -> None:
    data = tmp_path / "box.sqlite3"
    with Sandbox(data=str(data)) as box:
        args = ["--data", str(data), "--dns-port", str(box.dns_address[1])]
        switched = cli("chaos", "alpha.test", "auth-no-key", *args)
        assert switched.returncode == 0, switched.stderr
        assert "its DKIM keys are missing from DNS" in switched.stdout
        key = ["dns", "sandbox._domainkey.alpha.test", "TXT", *args]
        assert wait_until(lambda: cli(*key).stdout == "NXDOMAIN\n", 5)
        assert cli("dns", "alpha.test", "TXT", *args).stdout.startswith('"v=spf1')
        assert cli("chaos", "alpha.test", "off", *args).returncode == 0
        assert wait_until(lambda: cli(*key).stdout.startswith('"v=DKIM1'), 5)
    bad = cli("chaos", "alpha.test", "auth-everything", "--data", str(data))
    assert bad.returncode == 2 and "auth-no-key" in bad.stderr


@pytest.mark.parametrize(
    ("raw", "dkim_word"),
    [
        (b"no header separator at all", "none"),
        (b"From: a@alpha.test\r\nDKIM-Signature: garbage\r\n\r\nx\r\n", "permerror"),
        (
            b"From: a@alpha.test\r\nDKIM-Signature: v=1; a=rsa-sha256; d=alpha.test; s=sandbox;"
            b" b=!!!; bh=zz; h=from\r\n\r\nx\r\n",
            "permerror",
        ),
        (b"From: \xff\xfe@alpha.test\r\nSubject: \xc3\xa9\r\n\r\n\xff\r\n", "none"),
    ],
)
def test_odd_messages_are_accepted_with_a_verdict(
    fresh: Sandbox, raw: bytes, dkim_word: str
) -> None:
    host, port = fresh.mx_addresses["gamma.test"]
    with smtplib.SMTP(host, port, timeout=10) as client:
        client.ehlo("odd.example")
        client.mail("a@alpha.test")
        client.rcpt("odd@gamma.test")
        assert client.data(raw)[0] == 250
    [message] = fresh.messages(to="odd@gamma.test")
    assert message.auth is not None and message.auth.dkim == dkim_word


def test_a_forged_result_with_our_name_is_removed(fresh: Sandbox) -> None:
    forged = b"Authentication-Results: mx.gamma.test; dkim=pass\r\nFrom: a@alpha.test\r\n\r\nx\r\n"
    host, port = fresh.mx_addresses["gamma.test"]
    with smtplib.SMTP(host, port, timeout=10) as client:
        client.sendmail("a@alpha.test", ["odd@gamma.test"], forged)
    [message] = fresh.messages(to="odd@gamma.test")
    assert len(message.headers.get_all("Authentication-Results")) == 1
    assert message.auth is not None and message.auth.dkim == "none"


def test_a_domains_own_records_replace_the_generated_spf_and_dmarc() -> None:
    base = load_config(env={}, flags={})
    alpha = replace(
        base.domains[0],
        records=(
            DnsRecord("@", "TXT", "v=spf1 ip4:127.0.0.99 -all"),
            DnsRecord("_dmarc", "TXT", "v=DMARC1; p=reject"),
            DnsRecord("@", "TXT", "google-site-verification=abc"),
        ),
    )
    with Sandbox(config=replace(base, domains=(alpha, *base.domains[1:]))) as box:
        assert sorted(_stub_txt(box, "alpha.test")) == [
            b"google-site-verification=abc",
            b"v=spf1 ip4:127.0.0.99 -all",
        ]
        assert _stub_txt(box, "_dmarc.alpha.test") == [b"v=DMARC1; p=reject"]
        assert _stub_txt(box, "sandbox._domainkey.alpha.test")  # the keys stay


RESULTS = ("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror")


@given(
    spf=st.sampled_from(RESULTS),
    dkim_result=st.sampled_from(RESULTS),
    dmarc=st.sampled_from(("pass", "fail", "none", "temperror", "permerror")),
    reason=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
)
def test_the_header_written_reads_back_the_same(
    spf: str, dkim_result: str, dmarc: str, reason: str
) -> None:
    clauses = [
        authres.SPFAuthenticationResult(result=spf, smtp_mailfrom="alpha.test"),
        authres.DKIMAuthenticationResult(
            result=dkim_result, reason=reason or None, header_d="alpha.test", header_s="s"
        ),
        authres.dmarc.DMARCAuthenticationResult(result=dmarc, header_from="alpha.test"),
    ]
    raw = render("mx.beta.test", clauses) + b"Subject: x\r\n\r\nbody\r\n"
    verdicts = read_verdicts(raw)
    assert verdicts is not None
    assert (verdicts.spf, verdicts.dkim, verdicts.dmarc) == (spf, dkim_result, dmarc)
    written = " ".join(reason.replace("\\", "/").replace('"', "'").split())
    if written:
        assert verdicts.reasons["dkim"] == written


def test_a_sender_outside_every_zone_gets_none_and_a_hint(fresh: Sandbox) -> None:
    _submit(fresh, "noreply@myapp.example", "bob@beta.test",
            _message("noreply@myapp.example", "bob@beta.test", "outside"))  # fmt: skip
    message = fresh.wait_for(to="bob@beta.test", subject="outside")
    assert message.auth is not None
    assert (message.auth.spf, message.auth.dkim, message.auth.dmarc) == ("none", "none", "none")
    assert '[real_domains."myapp.example"]' in _auth(message)["dmarc"]["reason"]


def test_a_servfail_from_the_senders_zone_is_temperror(fresh: Sandbox) -> None:
    fresh.chaos("alpha.test").dns("servfail")
    host, port = fresh.mx_addresses["beta.test"]
    with smtplib.SMTP(host, port, timeout=10) as client:
        client.sendmail("app@alpha.test", ["bob@beta.test"],
                        _message("app@alpha.test", "bob@beta.test", "servfail"))  # fmt: skip
    [message] = fresh.messages(to="bob@beta.test", subject="servfail")
    assert message.auth is not None
    assert (message.auth.spf, message.auth.dmarc) == ("temperror", "temperror")
