"""Every link in a message, for "click the verification link" in a test or a shell script.

Theory of operation: walk the inline text parts (attachments are skipped) in MIME order,
decode each one first (quoted-printable and base64, then the charset), and collect:

- from text/plain: every URL that appears in the text;
- from text/html: ``href`` and ``src`` attributes and URLs in the visible text, in
  document order (``<script>`` and ``<style>`` are not visible).

Only absolute web URLs count (``http``, ``https``, ``ftp``): ``mailto:``, ``cid:``,
``data:``, ``javascript:`` and relative references are not links a test can follow. The
result keeps the first occurrence of each URL, in order.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from sandbox.mime import decoded_text, parse

SCHEMES = ("http", "https", "ftp")
# A URL in running text ends at white space, quotes or angle brackets (RFC 3986 Appendix C:
# "<http://…>" and quotes are the usual delimiters in plain text).
_TEXT_URL = re.compile(r"\b(?:https?|ftp)://[^\s<>\"'`]+", re.IGNORECASE)
# Punctuation that ends a sentence rather than the URL ("see https://x.test/a.").
_TRAILING = ".,;:!?'\""
_PAIRS = {")": "(", "]": "[", "}": "{"}
_INVISIBLE = {"script", "style", "head", "title"}
_URL_ATTRIBUTES = {"href", "src"}


def links_in(raw: bytes) -> list[str]:
    """Every web URL in the message's inline text and HTML parts, once each, in order."""
    found: list[str] = []
    for part in parse(raw).walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain":
            found += urls_in_text(decoded_text(part))
        elif ctype == "text/html":
            found += urls_in_html(decoded_text(part))
    return unique(found)


def urls_in_text(text: str) -> list[str]:
    return [url for url in (_trim(m.group(0)) for m in _TEXT_URL.finditer(text)) if url]


def urls_in_html(html: str) -> list[str]:
    collector = _LinkCollector()
    collector.feed(html)
    collector.close()
    return collector.urls


def unique(urls: list[str]) -> list[str]:
    return list(dict.fromkeys(urls))


def _trim(url: str) -> str:
    """Drop sentence punctuation and unbalanced closing brackets from the end."""
    while url:
        last = url[-1]
        unbalanced = last in _PAIRS and url.count(last) > url.count(_PAIRS[last])
        if last in _TRAILING or unbalanced:
            url = url[:-1]
        else:
            break
    _, sep, rest = url.partition("://")
    return url if sep and rest else ""


def _is_web_url(value: str) -> bool:
    scheme, sep, rest = value.partition("://")
    return bool(sep and rest) and scheme.lower() in SCHEMES


class _LinkCollector(HTMLParser):
    """href/src attributes and URLs in visible text, in document order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in _URL_ATTRIBUTES and value:
                url = value.strip()
                if _is_web_url(url):
                    self.urls.append(url)
        if tag in _INVISIBLE:
            self._hidden += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in _URL_ATTRIBUTES and value and _is_web_url(value.strip()):
                self.urls.append(value.strip())

    def handle_endtag(self, tag: str) -> None:
        if tag in _INVISIBLE and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.urls += urls_in_text(data)
