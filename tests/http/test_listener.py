"""The HTTP listener in `serve`: --http-port, MAIL_SANDBOX_HTTP_PORT, [http], the ready
line and the banner; a port already taken is a clean start-up error."""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path

from sandbox.config import load_config
from tests.conftest import FREE_PORTS, ServeProcess, clean_env, cli


def test_serve_reports_http_in_the_ready_line_and_answers(tmp_path: Path) -> None:
    served = ServeProcess(tmp_path / "served.sqlite3")
    try:
        host, port = served.ready["http"]
        assert port > 0
        with urllib.request.urlopen(f"http://{host}:{port}/livez", timeout=5) as answer:
            assert answer.read() == b"ok"
        with urllib.request.urlopen(f"http://{host}:{port}/api/v1/messages", timeout=5) as r:
            assert json.loads(r.read())["total"] == 0
        assert served.proc.stderr is not None
        banner = []
        while not banner or "stop with Ctrl-C" not in banner[-1]:
            line = served.proc.stderr.readline()
            assert line, f"serve's banner ended early: {banner}"
            banner.append(line)
        assert f"  HTTP API: http://{host}:{port}/api/v1/ (Mailpit's)\n" in banner
    finally:
        served.stop()


def test_http_settings_from_every_layer(tmp_path: Path) -> None:
    assert load_config(env={}).http.port == 8025
    toml = tmp_path / "c.toml"
    toml.write_text('[http]\nport = 9025\npassword = "pw"\ncors_origins = "http://a.test"\n')
    from_file = load_config(config_file=str(toml), env={})
    assert (from_file.http.port, from_file.http.password) == (9025, "pw")
    assert from_file.http.cors_origins == "http://a.test"
    assert load_config(env={"MAIL_SANDBOX_HTTP_PORT": "0"}).http.port == 0
    assert load_config(env={}, flags={"http.port": 8125}).http.port == 8125


def test_a_taken_http_port_is_a_clean_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = list(FREE_PORTS)
        index = args.index("--http-port")
        args[index + 1] = str(port)
        done = cli("serve", "--data", str(tmp_path / "x.sqlite3"), *args, env=clean_env())
    assert done.returncode != 0
    assert "--http-port 0" in done.stderr
    assert "Traceback" not in done.stderr
    config = cli("config", "--http-port", "0", env=clean_env())
    assert "[http]" in config.stdout and "port = 0" in config.stdout
