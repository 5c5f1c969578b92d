"""The OpenAPI 3 document of the whole HTTP API, served at ``/api/v1/openapi.json``.

Built from a compact table so it stays next to the truth: a test checks that every route
the application serves is described here and nothing else is.
"""

from __future__ import annotations

from typing import Any

from sandbox import __version__

_ID = {"name": "ID", "in": "path", "required": True, "description": "message ID or latest",
       "schema": {"type": "string"}}  # fmt: skip
_PAGE = [
    {"name": "start", "in": "query", "schema": {"type": "integer", "default": 0}},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 50}},
]
_QUERY = {"name": "query", "in": "query", "required": True, "schema": {"type": "string"},
          "description": "Mailpit's search syntax: to: from: cc: bcc: subject: message-id:"
          ' tag: is:read is:unread has:attachment after: before: larger: smaller:, "phrases",'
          " - to negate"}  # fmt: skip


def _q(name: str, kind: str = "string", **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": kind}, **extra}


def _p(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


# (method, path, tag, summary, parameters, has a JSON body, what the 200 answer is)
_ROUTES: list[tuple[str, str, str, str, list[dict[str, Any]], bool, str]] = [
    ("get", "/api/v1/messages", "Mailpit", "List messages, newest first", _PAGE, False,
     "MessagesSummary"),
    ("put", "/api/v1/messages", "Mailpit", 'Set read status: {"IDs", "Read", "Search"}', [],
     True, "ok"),
    ("delete", "/api/v1/messages", "Mailpit", 'Delete {"IDs"}; no IDs deletes every message'
     " (also MailHog's delete-all)", [], True, "ok"),
    ("get", "/api/v1/search", "Mailpit", "Search messages", [_QUERY, *_PAGE], False,
     "MessagesSummary"),
    ("delete", "/api/v1/search", "Mailpit", "Delete the messages a search matches", [_QUERY],
     False, "ok"),
    ("get", "/api/v1/message/{ID}", "Mailpit", "One message (marks it read)", [_ID], False,
     "Message"),
    ("get", "/api/v1/message/{ID}/headers", "Mailpit", "Headers, names sorted", [_ID], False,
     "object"),
    ("get", "/api/v1/message/{ID}/raw", "Mailpit", "The source byte for byte", [_ID], False,
     "text"),
    ("get", "/api/v1/message/{ID}/part/{PartID}", "Mailpit", "One MIME part, decoded",
     [_ID, _p("PartID")], False, "binary"),
    ("post", "/api/v1/message/{ID}/release", "Mailpit", 'Re-send to {"To": [...]} through the'
     " submission server (real domains are held)", [_ID], True, "ok"),
    ("get", "/view/{ID}.html", "Mailpit", "The HTML part, under a sandboxing CSP", [_ID], False,
     "html"),
    ("get", "/view/{ID}.txt", "Mailpit", "The text part", [_ID], False, "text"),
    ("get", "/api/v1/tags", "Mailpit", "Every tag in use", [], False, "array"),
    ("put", "/api/v1/tags", "Mailpit", 'Replace the tags of {"IDs"} with {"Tags"}', [], True,
     "ok"),
    ("put", "/api/v1/tags/{Tag}", "Mailpit", 'Rename a tag to {"Name"}', [_p("Tag")], True,
     "ok"),
    ("delete", "/api/v1/tags/{Tag}", "Mailpit", "Remove a tag from every message",
     [_p("Tag")], False, "ok"),
    ("post", "/api/v1/send", "Mailpit", "Send a message through the submission server", [],
     True, "SendResponse"),
    ("get", "/api/v1/info", "Mailpit", "Totals and runtime statistics", [], False, "object"),
    ("get", "/api/v1/webui", "Mailpit", "Web UI configuration", [], False, "object"),
    ("get", "/livez", "Mailpit", "Alive", [], False, "text"),
    ("get", "/readyz", "Mailpit", "Ready (503 while starting)", [], False, "text"),
    ("get", "/api/events", "Mailpit", "WebSocket: {Type, Data} with Type new, update, delete,"
     " truncate, prune, stats", [], False, "websocket"),
    ("get", "/api/v2/messages", "MailHog", "MailHog's message list", _PAGE, False, "object"),
    ("get", "/api/v2/search", "MailHog", "MailHog's search",
     [_q("kind", enum=["from", "to", "containing"]), _q("query", required=True), *_PAGE],
     False, "object"),
    ("delete", "/api/v1/messages/{ID}", "MailHog", "Delete one message", [_ID], False, "empty"),
    ("post", "/api/v1/messages/{ID}/release", "MailHog", 'Re-send to {"Email"} (the SMTP'
     " server named is ignored: nothing leaves the machine)", [_ID], True, "empty"),
    ("get", "/api/v1/message/{ID}/journey", "Sandbox", "The journey hop by hop and the"
     " verdicts: {id, journey, auth}",
     [_ID], False, "object"),
    ("get", "/api/v1/queue", "Sandbox", "Relay deliveries not done yet: {deliveries}", [],
     False, "object"),
    ("post", "/api/v1/queue/retry", "Sandbox", "Retry every waiting delivery now: {retried}",
     [], False, "object"),
    ("get", "/api/v1/chaos", "Sandbox", "Faults per domain: {domains}", [], False, "object"),
    ("put", "/api/v1/chaos/{domain}", "Sandbox", 'Set a fault: {"mode", "code", "stage",'
     ' "seconds", "ms", "per_minute", "probability", "message"} as in mail-sandbox chaos',
     [_p("domain")], True, "object"),
    ("delete", "/api/v1/chaos/{domain}", "Sandbox", "Faults off", [_p("domain")], False,
     "object"),
    ("get", "/api/v1/dns/log", "Sandbox", "Newest DNS queries: {queries}",
     [_q("limit", "integer")], False, "object"),
    ("get", "/api/v1/dns/lookup", "Sandbox", "Ask the DNS stub: {name, type, rcode, answers}",
     [_q("name", required=True), _q("type")], False, "object"),
    ("get", "/api/v1/domains", "Sandbox", "Domains, mailboxes and folders with counts", [],
     False, "object"),
    ("get", "/api/v1/smtp/sessions", "Sandbox", "Newest SMTP sessions: {sessions}",
     [_q("limit", "integer")], False, "object"),
    ("get", "/api/v1/sessions", "Sandbox", "The session log, newest first: {sessions}, each"
     " with protocol, server, peer, user (IMAP/POP3) or auth_user (SMTP), tls, open,"
     " started_at, and folder, idling, steps (IMAP/POP3) or helo, messages, transcript"
     " (SMTP)", [_q("protocol", enum=["imap", "pop3", "smtp"]), _q("limit", "integer")],
     False, "object"),
    ("get", "/api/v1/wait", "Sandbox", "The first matching message as soon as it is stored"
     " (408 on timeout)", [{**_QUERY, "required": False}, _q("timeout", "number"),
                            _q("new", "boolean")], False, "MessageSummary"),
    ("get", "/api/v1/openapi.json", "Sandbox", "This document", [], False, "object"),
]  # fmt: skip

_ADDRESS = {"type": "object", "properties": {"Name": {"type": "string"},
                                              "Address": {"type": "string"}}}  # fmt: skip
_SUMMARY_FIELDS = {
    "ID": {"type": "string"}, "MessageID": {"type": "string"}, "Read": {"type": "boolean"},
    "From": _ADDRESS, "To": {"type": "array", "items": _ADDRESS},
    "Cc": {"type": "array", "items": _ADDRESS}, "Bcc": {"type": "array", "items": _ADDRESS},
    "ReplyTo": {"type": "array", "items": _ADDRESS}, "Subject": {"type": "string"},
    "Created": {"type": "string", "format": "date-time"}, "Username": {"type": "string"},
    "Tags": {"type": "array", "items": {"type": "string"}}, "Size": {"type": "integer"},
    "Attachments": {"type": "integer"}, "Snippet": {"type": "string"},
}  # fmt: skip
_ATTACHMENT = {"type": "object", "properties": {
    "PartID": {"type": "string"}, "FileName": {"type": "string"},
    "ContentType": {"type": "string"}, "ContentID": {"type": "string"},
    "Size": {"type": "integer"}, "Checksums": {"type": "object"}}}  # fmt: skip
SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "properties": {"Error": {"type": "string"}}},
    "MessageSummary": {"type": "object", "properties": _SUMMARY_FIELDS},
    "Message": {"type": "object", "properties": {
        **{k: v for k, v in _SUMMARY_FIELDS.items() if k not in ("Attachments", "Snippet")},
        "ReturnPath": {"type": "string"}, "Date": {"type": "string"},
        "ListUnsubscribe": {"type": "object"}, "Text": {"type": "string"},
        "HTML": {"type": "string"}, "Inline": {"type": "array", "items": _ATTACHMENT},
        "Attachments": {"type": "array", "items": _ATTACHMENT},
        "Auth": {"$ref": "#/components/schemas/Auth"}}},
    "Auth": {"type": "object", "nullable": True, "description": "The sandbox's own: the"
             " receiving MX's SPF/DKIM/DMARC/ARC verdicts (null: not checked)", "properties": {
        "authserv_id": {"type": "string"}, "spf": {"type": "string"},
        "dkim": {"type": "string"}, "dmarc": {"type": "string"}, "arc": {"type": "string"},
        "results": {"type": "array", "items": {"type": "object"}}}},
    "MessagesSummary": {"type": "object", "properties": {
        "total": {"type": "integer"}, "unread": {"type": "integer"},
        "messages_count": {"type": "integer"}, "messages_unread": {"type": "integer"},
        "start": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}},
        "messages": {"type": "array", "items": {"$ref": "#/components/schemas/MessageSummary"}}}},
    "SendResponse": {"type": "object", "properties": {"ID": {"type": "string"}}},
}  # fmt: skip
_MEDIA = {"text": "text/plain", "html": "text/html", "binary": "application/octet-stream"}
_ERRORS = {
    "400": "Bad input (the Error says which)",
    "401": "Credentials needed (beyond loopback, or with [http] password)",
    "403": "Host or Origin refused (DNS rebinding, cross-site page)",
    "404": "No such message, part, tag, domain or path",
    "405": "Method not allowed on this path",
    "408": "wait: nothing matched within the timeout",
    "413": "Body larger than the SMTP size limit",
}


def _answer(kind: str) -> dict[str, Any]:
    if kind in SCHEMAS:
        return {
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{kind}"}}}
        }
    if kind in _MEDIA:
        return {"content": {_MEDIA[kind]: {"schema": {"type": "string"}}}}
    if kind == "ok":
        return {"content": {"text/plain": {"schema": {"type": "string", "example": "ok"}}}}
    if kind in ("object", "array"):
        return {"content": {"application/json": {"schema": {"type": kind}}}}
    return {}


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for method, path, tag, summary, parameters, body, answer in _ROUTES:
        operation: dict[str, Any] = {
            "tags": [tag],
            "summary": summary,
            "parameters": parameters,
            "responses": {
                "200": {"description": "OK", **_answer(answer)},
                **{code: {"description": text, **error} for code, text in _ERRORS.items()},
            },
        }
        if body:
            operation["requestBody"] = {
                "required": method != "delete" and "messages" not in path,
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "mail-sandbox HTTP API",
            "version": __version__,
            "description": "Mailpit's REST API v1 (same paths, parameters, field names and"
            " status codes), MailHog's v2 reads, and the sandbox's own endpoints.",
        },
        "tags": [{"name": "Mailpit"}, {"name": "MailHog"}, {"name": "Sandbox"}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}},
        },
    }


def routes() -> list[tuple[str, str]]:
    """(method, path) of every operation described, for the test that keeps it true."""
    return [(method.upper(), path) for method, path, *_ in _ROUTES]
