"""Mailpit's search syntax, parsed without I/O: examples and properties (hypothesis)."""

from __future__ import annotations

from datetime import UTC

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.http.search import KEYS, SearchError, parse_search, parse_size, render, zone
from sandbox.store.http_views import SearchFilter, Term


def test_every_filter_mailpit_documents() -> None:
    flt = parse_search(
        'to:larry from:ann cc:moe bcc:boss subject:"order 7" message-id:<a@b> tag:urgent'
        " is:read -is:unread has:attachment after:2026-01-31 before:2026-02-01T12:00Z"
        ' larger:1M smaller:500KiB invoice "exact phrase" !-x'
    )
    assert flt.terms == (
        Term("to", "larry"),
        Term("from", "ann"),
        Term("cc", "moe"),
        Term("bcc", "boss"),
        Term("subject", "order 7"),
        Term("message-id", "<a@b>"),
        Term("tag", "urgent"),
        Term("is", "read"),
        Term("is", "unread", negated=True),
        Term("has", "attachment"),
        Term("after", 1769817600.0),
        Term("before", 1769947200.0),
        Term("larger", 1_000_000),
        Term("smaller", 512_000),
        Term("text", "invoice"),
        Term("text", "exact phrase"),
        Term("text", "-x", negated=True),
    )


def test_unknown_keys_and_quoted_keys_are_text() -> None:
    assert parse_search("color:red").terms == (Term("text", "color:red"),)
    assert parse_search('"to:larry"').terms == (Term("text", "to:larry"),)
    assert parse_search("to: subject:").terms == ()  # Mailpit ignores empty filters
    assert parse_search("TO:Larry").terms == (Term("to", "Larry"),)
    assert parse_search('subject:"say \\"hi\\""').terms == (Term("subject", 'say "hi"'),)
    assert parse_search('"unclosed phrase').terms == (Term("text", "unclosed phrase"),)
    assert parse_search("   ").terms == ()


@pytest.mark.parametrize(
    "bad", ["is:starred", "has:pictures", "after:yesterday", "larger:big", "smaller:", "is:"]
)
def test_values_that_cannot_be_read(bad: str) -> None:
    with pytest.raises(SearchError) as caught:
        parse_search(bad)
    assert bad.split(":")[0] in str(caught.value)


def test_dates_in_a_time_zone() -> None:
    paris = zone("Europe/Paris")
    assert parse_search("after:2026-01-31", paris).terms == (Term("after", 1769814000.0),)
    assert parse_search("after:2026-01-31T00:00Z", paris).terms == (Term("after", 1769817600.0),)
    assert zone(None) is UTC and zone("") is UTC
    with pytest.raises(SearchError):
        zone("Mars/Olympus")


def test_sizes() -> None:
    assert parse_size("larger", "10") == 10
    assert parse_size("larger", "1.5k") == 1500
    assert parse_size("larger", "2MB") == 2_000_000
    assert parse_size("larger", "1MiB") == 1_048_576
    assert parse_size("larger", "1G") == 1_000_000_000


@given(st.text(max_size=80))
def test_any_text_parses_or_says_why(text: str) -> None:
    try:
        flt = parse_search(text)
    except SearchError as exc:
        message = str(exc)
        flt = None
    if flt is None:
        assert message
        return
    assert all(term.field in ("text", *KEYS) for term in flt.terms)
    assert parse_search(render(flt)) == flt


_text_value = st.text(
    alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=20
).filter(lambda v: v.strip() == v and v != "")
_terms = st.one_of(
    st.builds(
        Term,
        st.sampled_from(["to", "from", "cc", "bcc", "subject", "tag"]),
        _text_value,
        st.booleans(),
    ),
    st.builds(Term, st.just("text"), _text_value, st.booleans()),
    st.builds(Term, st.just("is"), st.sampled_from(["read", "unread", "tagged"]), st.booleans()),
    st.builds(Term, st.sampled_from(["larger", "smaller"]), st.integers(0, 10**12), st.booleans()),
    st.builds(
        Term,
        st.sampled_from(["after", "before"]),
        st.integers(-(10**9), 4 * 10**9).map(float),
        st.booleans(),
    ),
)


@given(st.lists(_terms, max_size=6))
def test_rendered_filters_parse_back(terms: list[Term]) -> None:
    flt = SearchFilter(tuple(terms))
    assert parse_search(render(flt)) == flt
