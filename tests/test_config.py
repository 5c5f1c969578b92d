"""Configuration layers and their error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.config import ConfigError, load_config, to_toml


def test_defaults_work_without_any_file() -> None:
    config = load_config(env={})
    assert config.host == "127.0.0.1"
    assert (
        config.smtp.port,
        config.mx.port,
        config.pop3.port,
        config.imap.port,
        config.dns.port,
    ) == (
        1025,
        2525,
        1110,
        1143,
        1053,
    )
    assert [(d.name, d.mx_address) for d in config.domains] == [
        ("alpha.test", "127.0.0.11"),
        ("beta.test", "127.0.0.12"),
        ("gamma.test", "127.0.0.13"),
    ]
    assert config.data.endswith("sandbox.sqlite3") and "mail-sandbox" in config.data
    assert config.smtp.max_message_size == 25 * 1024 * 1024


def test_layers_file_then_env_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.toml"
    path.write_text("[smtp]\nport = 2000\nmax_message_size = 1000\n[mx]\nport = 3000\n")
    env = {"MAIL_SANDBOX_CONFIG": str(path), "MAIL_SANDBOX_SMTP_PORT": "2001"}
    config = load_config(env=env)
    assert (config.smtp.port, config.smtp.max_message_size, config.mx.port) == (2001, 1000, 3000)
    config = load_config(env=env, flags={"smtp.port": 2002})
    assert config.smtp.port == 2002
    # an explicit --config wins over MAIL_SANDBOX_CONFIG
    other = tmp_path / "other.toml"
    other.write_text("[mx]\nport = 4000\n")
    assert load_config(config_file=str(other), env=env).mx.port == 4000


def test_domains_from_file_env_and_flags(tmp_path: Path) -> None:
    path = tmp_path / "d.toml"
    path.write_text('[domains."shop.test"]\nmx_address = "127.0.0.50"\n[domains."Bank.Test"]\n')
    config = load_config(config_file=str(path), env={})
    assert [(d.name, d.mx_address) for d in config.domains] == [
        ("shop.test", "127.0.0.50"),
        ("bank.test", "127.0.0.12"),
    ]
    config = load_config(env={"MAIL_SANDBOX_DOMAINS": "one.test, two.test"})
    assert [d.name for d in config.domains] == ["one.test", "two.test"]
    config = load_config(env={}, flags={"domains": ("x.test",)})
    assert [d.name for d in config.domains] == ["x.test"]


def test_toml_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[accounts]\n"larry@beta.test" = "pw"\n[smtp]\nidle_timeout = 5\n')
    config = load_config(config_file=str(path), env={}, flags={"data": str(tmp_path / "x.db")})
    out = tmp_path / "out.toml"
    out.write_text(to_toml(config))
    assert load_config(config_file=str(out), env={}) == config


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[smtp]\nport = 70000\n", "smtp.port: port must be 0-65535"),
        ('[smtp]\nport = "abc"\n', "smtp.port: expected a whole number, got 'abc'"),
        ("[smtp]\nportt = 1\n", "smtp.portt: unknown setting"),
        ("[smtp]\nmax_message_size = -1\n", "smtp.max_message_size: must be greater than 0"),
        ('host = "localhost-ish"\n', "host: expected an IP address"),
        ('domains = ["not a domain"]\n', "domains: 'not a domain' is not a domain name"),
        ('domains = ["a.test", "A.test"]\n', "domains: a domain is listed twice"),
        ('[accounts]\nlarry = "x"\n', "accounts.larry: expected an email address"),
        ("[smtp\n", "(syntax)"),
        ("port = true\n", "port: unknown setting"),
    ],
)
def test_bad_file_names_file_key_and_problem(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(config_file=str(path), env={})
    message = str(error.value)
    assert message.startswith(str(path) + ": ")
    assert expected in message
    assert "\n" not in message


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"environment MAIL_SANDBOX_MX_PORT: mx\.port: expected"):
        load_config(env={"MAIL_SANDBOX_MX_PORT": "many"})


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(config_file="/nonexistent/sandbox.toml", env={})
