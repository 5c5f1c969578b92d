"""The HTTP side: Mailpit's REST API v1, MailHog's v2 reads, the sandbox's own endpoints
(journey, queue, chaos, DNS, domains, SMTP sessions, wait) and the events WebSocket."""

from sandbox.http.app import HttpListener, make_app, start_http

__all__ = ["HttpListener", "make_app", "start_http"]
