"""A tiny sign-up web app that emails a verification link (standard library only).

POST /signup (form field ``email``) stores a token and mails a link to /verify?token=…;
GET /verify marks the address verified. Run it against a sandbox:

    mail-sandbox serve &                       # SMTP on 127.0.0.1:1025
    SMTP_PORT=1025 python app.py               # http://127.0.0.1:8000
    curl -d email=newuser@beta.test http://127.0.0.1:8000/signup
    curl "$(mail-sandbox links "$(mail-sandbox wait --to newuser@beta.test --json |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')" | head -1)"
"""

from __future__ import annotations

import html
import os
import secrets
import smtplib
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SENDER = "noreply@alpha.test"


class SignupApp:
    def __init__(self, smtp_host: str, smtp_port: int) -> None:
        self.smtp = (smtp_host, smtp_port)
        self.pending: dict[str, str] = {}  # token → address
        self.verified: set[str] = set()

    def sign_up(self, address: str, base_url: str) -> None:
        token = secrets.token_urlsafe(16)
        self.pending[token] = address
        link = f"{base_url}/verify?token={token}"
        message = EmailMessage()
        message["From"] = f"Example App <{SENDER}>"
        message["To"] = address
        message["Subject"] = "Verify your email address"
        message.set_content(f"Welcome! Confirm your address: {link}\n")
        message.add_alternative(
            f'<p>Welcome! <a href="{html.escape(link)}">Confirm your address</a>.</p>',
            subtype="html",
        )
        with smtplib.SMTP(*self.smtp, timeout=10) as client:
            client.send_message(message)

    def verify(self, token: str) -> str | None:
        address = self.pending.pop(token, None)
        if address is not None:
            self.verified.add(address)
        return address


def make_server(
    smtp_host: str, smtp_port: int, host: str = "127.0.0.1", port: int = 0
) -> ThreadingHTTPServer:
    app = SignupApp(smtp_host, smtp_port)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if urlsplit(self.path).path != "/signup":
                return self.reply(404, "not found")
            length = int(self.headers.get("Content-Length", "0"))
            form = parse_qs(self.rfile.read(length).decode())
            address = form.get("email", [""])[0]
            if "@" not in address:
                return self.reply(400, "give an email address")
            app.sign_up(address, f"http://{self.headers.get('Host', 'localhost')}")
            return self.reply(200, f"check {address} for a verification link")

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/verify":
                return self.reply(404, "not found")
            address = app.verify(parse_qs(url.query).get("token", [""])[0])
            if address is None:
                return self.reply(400, "unknown or used token")
            return self.reply(200, f"{address} is verified")

        def reply(self, status: int, text: str) -> None:
            body = f"<!doctype html><p>{html.escape(text)}</p>\n".encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer((host, port), Handler)
    server.app = app  # type: ignore[attr-defined]
    return server


if __name__ == "__main__":
    server = make_server(
        os.environ.get("SMTP_HOST", "127.0.0.1"),
        int(os.environ.get("SMTP_PORT", "1025")),
        port=int(os.environ.get("PORT", "8000")),
    )
    print(f"http://127.0.0.1:{server.server_port}")
    server.serve_forever()
