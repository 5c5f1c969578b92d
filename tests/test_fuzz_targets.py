"""The fuzz targets under hypothesis, in every test run (tests/fuzz/run.py goes deeper)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.harness import TARGETS

SEEDS = {
    "pop3": [b"USER larry@beta.test\r\nPASS x\r\nLIST\r\nRETR 1\r\nQUIT\r\n"],
    "imap": [
        b"a LOGIN larry@beta.test x\r\nb SELECT INBOX\r\n"
        b"c FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (FROM)])\r\n"
        b"d APPEND INBOX {5+}\r\nhello\r\n"
    ],
    "dns": [bytes.fromhex("abcd010000010000000000000462657461047465737400000f0001")],
}


def mutated(seed: bytes) -> st.SearchStrategy[bytes]:
    """A real transcript with random bytes spliced in, cut short or repeated."""
    return st.tuples(
        st.integers(0, len(seed)), st.binary(max_size=64), st.integers(0, len(seed))
    ).map(lambda t: seed[: t[0]] + t[1] + seed[t[2] :])


@pytest.mark.parametrize("target", sorted(TARGETS))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_targets_never_raise(target: str, data: st.DataObject) -> None:
    seed = SEEDS[target][0]
    blob = data.draw(st.one_of(st.binary(max_size=512), mutated(seed)))
    TARGETS[target](blob)
