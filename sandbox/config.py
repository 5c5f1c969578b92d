"""The sandbox's one configuration: a frozen dataclass tree built once at the edge.

Layers, lowest first: built-in defaults < TOML file (``--config`` or ``MAIL_SANDBOX_CONFIG``)
< ``MAIL_SANDBOX_*`` environment < command-line flags. Every layer is a plain mapping of
dotted keys (``smtp.port``) so that one validator reports a bad value the same way
wherever it came from: one line naming the source, the key and the problem.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, NoReturn

import platformdirs

from sandbox.domain_config import (
    DomainConfig,
    RealDomain,
    domain_toml,
    parse_domain,
    parse_real_domain,
    real_domain_toml,
)

MEMORY = ":memory:"
DEFAULT_DOMAINS = ("alpha.test", "beta.test", "gamma.test")
FIRST_MX_ADDRESS = "127.0.0.11"
ENV_PREFIX = "MAIL_SANDBOX_"


class ConfigError(ValueError):
    """A bad configuration value; the message is one line, ready for stderr."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        super().__init__(f"{source}: {key}: {problem}")
        self.source = source
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class Account:
    """A login for POP3/IMAP/SMTP AUTH; once any exist, wrong passwords are refused."""

    address: str
    password: str


@dataclass(frozen=True)
class SmtpConfig:
    port: int = 1025
    hostname: str = "submission.localhost"
    max_message_size: int = 25 * 1024 * 1024
    # RFC 5321 §4.5.3.1.6: 998 octets of text plus CRLF; aiosmtpd counts the dot too.
    max_line_length: int = 1001
    max_recipients: int = 1000
    max_connections: int = 1000  # per listener; more get 421 4.7.0
    max_bad_commands: int = 20  # errors in one session before 421 4.7.0 and a close
    idle_timeout: float = 300.0
    # As production MTAs are: paths in angle brackets, RFC 5321 syntax, no control
    # characters, UTF-8 addresses only with SMTPUTF8. false: any path aiosmtpd can read.
    strict: bool = True


@dataclass(frozen=True)
class MxConfig:
    port: int = 2525


@dataclass(frozen=True)
class DnsConfig:
    port: int = 1053
    auth_timeout: float = 2.0  # seconds for each SPF/DKIM/DMARC lookup; then temperror
    max_tcp_message: int = 65535  # RFC 7766: a longer TCP query closes the connection
    max_tcp_connections: int = 256
    tcp_idle_timeout: float = 10.0  # RFC 7766 §6.2.3: close silent TCP connections


@dataclass(frozen=True)
class SmtpsConfig:
    """Implicit TLS submission (RFC 8314 §3.3)."""

    port: int = 1465


@dataclass(frozen=True)
class Pop3Config:
    port: int = 1110
    idle_timeout: float = 600.0  # RFC 1939 §3: at least 10 minutes
    max_line_length: int = 512  # RFC 2449 §4: commands up to 255 octets
    max_bad_commands: int = 10
    max_connections: int = 1000  # per listener; more get -ERR [SYS/TEMP] and a close


@dataclass(frozen=True)
class Pop3sConfig:
    port: int = 1995


@dataclass(frozen=True)
class ImapConfig:
    port: int = 1143
    max_literal_size: int = 32 * 1024 * 1024
    max_line_length: int = 64 * 1024
    # A whole command: its lines and every literal in it (several literals, each under
    # max_literal_size, must not add up without bound); much lower before a login.
    max_command_size: int = 64 * 1024 * 1024
    max_command_size_before_login: int = 8 * 1024
    idle_timeout: float = 1800.0  # RFC 3501 §5.4: at least 30 minutes
    max_bad_commands: int = 20  # then * BYE and a close
    max_connections: int = 1000  # per listener; more get * BYE [UNAVAILABLE] and a close
    max_nesting: int = 32  # levels of nested search keys; deeper gets a tagged BAD
    # A client's APPEND to Sent of what the submission server already filed there (same
    # Message-ID) keeps the one copy (neomutt, Thunderbird save their own).
    dedupe_sent: bool = True


@dataclass(frozen=True)
class ImapsConfig:
    port: int = 1993


@dataclass(frozen=True)
class DkimConfig:
    key_dir: str = ""  # the folder of the DKIM key pairs; empty: "dkim" beside the data file


@dataclass(frozen=True)
class TlsConfig:
    # As production servers do: no AUTH/LOGIN/USER before STARTTLS/STLS (or implicit TLS).
    require_before_auth: bool = False


@dataclass(frozen=True)
class LoginsConfig:
    """The ``all`` login (every mailbox at once) for POP3 and IMAP.

    Without accounts it is always on, with any password. With accounts it is off unless
    ``allow_all`` is true, and then its password is ``all_password`` (empty: refused).
    """

    allow_all: bool = False
    all_password: str = ""


@dataclass(frozen=True)
class RetentionConfig:
    """Keep a long-running sandbox bounded; 0 turns a limit off (both are off by default)."""

    max_messages: int = 0
    max_age: float = 0.0  # seconds
    # Never prune what arrived this recently: a test may be waiting for it right now.
    grace: float = 60.0
    interval: float = 10.0  # seconds between prunes
    # The events journal (SMTP sessions, DNS queries, relay attempts) keeps this many rows,
    # the oldest trimmed at each prune; 0 keeps them all.
    max_events: int = 100_000


@dataclass(frozen=True)
class RelayConfig:
    """The outbound queue between fake domains."""

    concurrency: int = 20  # deliveries at once; postfix's default_destination_concurrency
    # Seconds before each retry of a 4xx; after the last one the message bounces.
    retry_schedule: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0)
    max_received: int = 25  # more Received: headers than this is a mail loop


@dataclass(frozen=True)
class HttpConfig:
    """The HTTP API (Mailpit's v1 paths plus the sandbox's own) and the webmail."""

    port: int = 8025  # Mailpit's and MailHog's port, so their clients' defaults work
    # Needed (HTTP basic, any user name) for every request when set; beyond loopback
    # an account's address and password work too.
    password: str = ""
    # Comma-separated origins allowed to call the API from a browser (CORS); none by default.
    cors_origins: str = ""


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    data: str = ""
    allow_open: bool = False  # listen beyond loopback without accounts (see runtime)
    domains: tuple[DomainConfig, ...] = ()
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    smtps: SmtpsConfig = field(default_factory=SmtpsConfig)
    mx: MxConfig = field(default_factory=MxConfig)
    pop3: Pop3Config = field(default_factory=Pop3Config)
    pop3s: Pop3sConfig = field(default_factory=Pop3sConfig)
    imap: ImapConfig = field(default_factory=ImapConfig)
    imaps: ImapsConfig = field(default_factory=ImapsConfig)
    dns: DnsConfig = field(default_factory=DnsConfig)
    dkim: DkimConfig = field(default_factory=DkimConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    logins: LoginsConfig = field(default_factory=LoginsConfig)
    relay: RelayConfig = field(default_factory=RelayConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    accounts: tuple[Account, ...] = ()
    # Real domains whose records the stub serves, so held mail from them is checked.
    real_domains: tuple[RealDomain, ...] = ()

    @property
    def require_tls_for_auth(self) -> bool:
        return self.tls.require_before_auth

    def domain_names(self) -> frozenset[str]:
        return frozenset(d.name for d in self.domains)

    def is_fake_domain(self, domain: str) -> bool:
        return domain.lower() in self.domain_names()

    @property
    def in_memory(self) -> bool:
        return self.data == MEMORY


def default_data_path() -> str:
    return str(platformdirs.user_data_path("mail-sandbox") / "sandbox.sqlite3")


def default_domains(names: tuple[str, ...] = DEFAULT_DOMAINS) -> tuple[DomainConfig, ...]:
    return tuple(DomainConfig(name, nth_mx_address(i)) for i, name in enumerate(names))


def nth_mx_address(index: int) -> str:
    """127.0.0.11, .12, … — one loopback address per domain (DESIGN.md)."""
    return str(ipaddress.IPv4Address(FIRST_MX_ADDRESS) + index)


# --- the layers -------------------------------------------------------------------------

# The sections of the file, each a frozen dataclass; every field is a key of every layer.
SECTIONS: dict[str, type] = {
    "smtp": SmtpConfig,
    "smtps": SmtpsConfig,
    "mx": MxConfig,
    "pop3": Pop3Config,
    "pop3s": Pop3sConfig,
    "imap": ImapConfig,
    "imaps": ImapsConfig,
    "dns": DnsConfig,
    "dkim": DkimConfig,
    "tls": TlsConfig,
    "logins": LoginsConfig,
    "relay": RelayConfig,
    "retention": RetentionConfig,
    "http": HttpConfig,
}
_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "tuple[float, ...]": tuple}
# Flat keys every layer may set, with the type the value must have.
_SCALARS: dict[str, type] = {"host": str, "data": str, "allow_open": bool} | {
    f"{section}.{f.name}": _TYPES[str(f.type)]
    for section, cls in SECTIONS.items()
    for f in fields(cls)
}
_PORT_KEYS = {key for key in _SCALARS if key.endswith(".port")}
# Sizes, counts and timeouts: zero or less makes no sense for any of them.
_OFF_BY_ZERO = {
    "retention.max_messages",
    "retention.max_age",
    "retention.grace",
    "retention.max_events",
}
_POSITIVE_KEYS = {
    key
    for key, kind in _SCALARS.items()
    if kind in (int, float) and key not in _PORT_KEYS | _OFF_BY_ZERO
}
# Environment variables: MAIL_SANDBOX_SMTP_PORT → smtp.port, and so on.
ENV_KEYS: dict[str, str] = {ENV_PREFIX + k.upper().replace(".", "_"): k for k in _SCALARS} | {
    ENV_PREFIX + "DOMAINS": "domains",
}
_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")


def load_config(
    *,
    config_file: str | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Config:
    """Build the effective configuration from every layer; raise ConfigError on bad input."""
    env = os.environ if env is None else env
    path = config_file or env.get(ENV_PREFIX + "CONFIG") or None
    values: dict[str, Any] = {}
    domains: tuple[DomainConfig, ...] | None = None
    accounts: tuple[Account, ...] = ()
    real: tuple[RealDomain, ...] = ()
    if path:
        file_values, domains, accounts, real = _read_toml(path)
        values.update(file_values)
    for var, key in ENV_KEYS.items():
        if var in env:
            if key == "domains":
                domains = _domains_from_list(f"environment {var}", "domains", env[var].split(","))
            else:
                values[key] = _coerce(f"environment {var}", key, env[var])
    for key, value in (flags or {}).items():
        if value is None:
            continue
        if key == "domains":
            domains = _domains_from_list("command line", "--domain", list(value))
        else:
            values[key] = _coerce("command line", key, value)
    return _build(values, domains, accounts, real)


def _build(
    values: Mapping[str, Any],
    domains: tuple[DomainConfig, ...] | None,
    accounts: tuple[Account, ...],
    real_domains: tuple[RealDomain, ...] = (),
) -> Config:
    sections: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for key, value in values.items():
        section, _, name = key.rpartition(".")
        (sections.setdefault(section, {}) if section else top)[name] = value
    config = Config(
        host=top.get("host", "127.0.0.1"),
        data=top.get("data") or default_data_path(),
        allow_open=top.get("allow_open", False),
        domains=domains if domains is not None else default_domains(),
        accounts=accounts,
        real_domains=real_domains,
        **{name: cls(**sections.get(name, {})) for name, cls in SECTIONS.items()},
    )
    if config.data != MEMORY:
        config = replace(config, data=str(Path(config.data).expanduser()))
    return config


# Keys that were renamed: one name per limit across every section.
RENAMED = {"imap.bad_command_limit": "imap.max_bad_commands"}


def _coerce(source: str, key: str, raw: Any) -> Any:
    """Check one scalar against its type and range, converting text from env/flags."""
    if key in RENAMED:
        raise ConfigError(source, key, f"renamed: use {RENAMED[key]} instead")
    if key not in _SCALARS:
        raise ConfigError(source, key, "unknown setting")
    want = _SCALARS[key]
    if want is tuple:
        return _seconds_list(source, key, raw)
    if want is bool:
        return _boolean(source, key, raw)
    value: Any = raw
    if isinstance(raw, str) and want is not str:
        try:
            value = want(raw.strip())
        except ValueError:
            raise ConfigError(source, key, f"expected {_type_name(want)}, got {raw!r}") from None
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, want) or isinstance(value, bool):
        raise ConfigError(source, key, f"expected {_type_name(want)}, got {raw!r}")
    checked: Any = value  # isinstance against a runtime type narrows to object for mypy
    if key in _PORT_KEYS and not 0 <= checked <= 65535:
        raise ConfigError(source, key, f"port must be 0-65535 (0 = any free port), got {value}")
    if key in _POSITIVE_KEYS and checked <= 0:
        raise ConfigError(source, key, f"must be greater than 0, got {value}")
    if key in _OFF_BY_ZERO and checked < 0:
        raise ConfigError(source, key, f"must be 0 (off) or more, got {value}")
    if key == "host":
        _check_ip(source, key, str(value))
    if key == "data" and not value:
        raise ConfigError(source, key, "must be a file path or :memory:")
    return value


def _boolean(source: str, key: str, raw: Any) -> bool:
    """true/false in TOML; also 1/0, yes/no, on/off from the environment and flags."""
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(source, key, f"expected true or false, got {raw!r}")


def _seconds_list(source: str, key: str, raw: Any) -> tuple[float, ...]:
    """A list of seconds: ``[1, 5, 30]`` in TOML, ``1,5,30`` in the environment."""
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple):
        raise ConfigError(source, key, f"expected a list of seconds like [1, 5, 30], got {raw!r}")
    try:
        values = tuple(float(item) for item in items if not isinstance(item, bool))
    except (TypeError, ValueError):
        raise ConfigError(
            source, key, f"expected a list of seconds like [1, 5, 30], got {raw!r}"
        ) from None
    if len(values) != len(items) or any(v < 0 for v in values):
        raise ConfigError(source, key, f"expected seconds of 0 or more, got {raw!r}")
    return values


def _type_name(want: type) -> str:
    return {int: "a whole number", float: "a number", str: "text"}.get(want, want.__name__)


def _check_ip(source: str, key: str, value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ConfigError(source, key, f"expected an IP address, got {value!r}") from None


def _check_domain(source: str, key: str, name: str) -> str:
    name = name.strip().lower().rstrip(".")
    if not _DOMAIN_RE.match(name):
        raise ConfigError(source, key, f"{name!r} is not a domain name like alpha.test")
    return name


def _domains_from_list(source: str, key: str, names: list[Any]) -> tuple[DomainConfig, ...]:
    if not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(source, key, "expected a list of domain names")
    cleaned = [_check_domain(source, key, n) for n in names if n.strip()]
    if not cleaned:
        raise ConfigError(source, key, "at least one domain is needed")
    if len(set(cleaned)) != len(cleaned):
        raise ConfigError(source, key, "a domain is listed twice")
    return default_domains(tuple(cleaned))


def _read_toml(
    path: str,
) -> tuple[
    dict[str, Any], tuple[DomainConfig, ...] | None, tuple[Account, ...], tuple[RealDomain, ...]
]:
    import tomllib  # here: compiling its patterns costs every CLI call that reads no file

    source = str(path)
    try:
        with open(path, "rb") as fh:
            document = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(source, "(file)", "no such file") from None
    except OSError as exc:
        raise ConfigError(source, "(file)", exc.strerror or str(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "(syntax)", str(exc)) from None

    values: dict[str, Any] = {}
    domains: tuple[DomainConfig, ...] | None = None
    accounts: tuple[Account, ...] = ()
    real: tuple[RealDomain, ...] = ()
    for name, value in document.items():
        if name == "domains":
            domains = _domains_from_toml(source, value)
        elif name == "real_domains":
            real = _real_domains_from_toml(source, value)
        elif name == "accounts":
            accounts = _accounts_from_toml(source, value)
        elif isinstance(value, dict):
            for sub, subvalue in value.items():
                key = f"{name}.{sub}"
                values[key] = _coerce(source, key, subvalue)
        else:
            values[name] = _coerce(source, name, value)
    return values, domains, accounts, real


def _real_domains_from_toml(source: str, value: Any) -> tuple[RealDomain, ...]:
    """``[real_domains."shop.example"] records = [...]``: held mail's sender records."""

    def fail(key: str, problem: str) -> NoReturn:
        raise ConfigError(source, key, problem)

    if not isinstance(value, dict):
        fail("real_domains", 'expected a table per domain: [real_domains."shop.example"]')
    return tuple(
        parse_real_domain(_check_domain(source, "real_domains", name), settings, fail)
        for name, settings in value.items()
    )


def _domains_from_toml(source: str, value: Any) -> tuple[DomainConfig, ...]:
    """``domains = ["a.test", …]`` or ``[domains."a.test"] mx_address = "127.0.0.21"``."""
    if isinstance(value, list):
        return _domains_from_list(source, "domains", value)
    if not isinstance(value, dict) or not value:
        raise ConfigError(source, "domains", "expected a list of names or a table per domain")

    def fail(key: str, problem: str) -> NoReturn:
        raise ConfigError(source, key, problem)

    result = []
    for index, (raw_name, settings) in enumerate(value.items()):
        name = _check_domain(source, "domains", raw_name)
        if not isinstance(settings, dict):
            fail(f"domains.{name}", 'expected a table, e.g. mx_address = "127.0.0.21"')
        result.append(parse_domain(name, settings, nth_mx_address(index), fail))
    return tuple(result)


def _accounts_from_toml(source: str, value: Any) -> tuple[Account, ...]:
    """``[accounts] "larry@beta.test" = "secret"``."""
    if not isinstance(value, dict):
        raise ConfigError(source, "accounts", 'expected a table: "address" = "password"')
    result = []
    for address, password in value.items():
        if "@" not in address:
            raise ConfigError(source, f"accounts.{address}", "expected an email address")
        if not isinstance(password, str):
            raise ConfigError(source, f"accounts.{address}", "the password must be text")
        result.append(Account(address.lower(), password))
    return tuple(result)


# --- TOML out -------------------------------------------------------------------------


def to_toml(config: Config) -> str:
    """The effective configuration, loadable again with ``--config``."""
    lines = [
        "# mail-sandbox effective configuration",
        f"host = {_toml_value(config.host)}",
        f"data = {_toml_value(config.data)}",
        f"allow_open = {_toml_value(config.allow_open)}",
    ]
    for section in SECTIONS:
        obj = getattr(config, section)
        lines += ["", f"[{section}]"]
        lines += [f"{f.name} = {_toml_value(getattr(obj, f.name))}" for f in fields(obj)]
    for domain in config.domains:
        lines += ["", *domain_toml(domain, _toml_value)]
    for real in config.real_domains:
        lines += ["", *real_domain_toml(real, _toml_value)]
    if config.accounts:
        lines += ["", "[accounts]"]
        lines += [f"{_toml_value(a.address)} = {_toml_value(a.password)}" for a in config.accounts]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
