"""edge.adapt.headers.cookie reads from the name's first occurrence on: the same answer as splitting the
whole header, for any header and name (a Hypothesis property), and bounded like it."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from edge.adapt.headers import _MAX_COOKIE_BYTES, cookie


def split_whole_header(header: str | None, name: str) -> str | None:
    """The reading before the shortcut: every part split and compared."""
    if not header or len(header) > _MAX_COOKIE_BYTES:
        return None
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value.strip().strip('"') or None
    return None


names = st.sampled_from(["edge_tier", "edge_m", "t", "edge_tier_x", "x-edge_tier"])
# Pieces that make the lookup's edge cases: names inside values and other names, separators, quotes,
# every kind of whitespace str.strip removes (tab, NBSP, the information separators), empty parts.
pieces = st.sampled_from(
    ["edge_tier", "edge_m", "t", "=", ";", "; ", " ", "\t", "\xa0", "\x1c", '"', "lite", "full", "_ga=GA1.2.3", "x", "edge_tier=", "=edge_tier"]
)
headers = st.one_of(st.lists(pieces, max_size=14).map("".join), st.text(max_size=30))


@settings(max_examples=2000, deadline=None)
@given(headers, names)
@example('_ga=1; edge_tier="lite"', "edge_tier")
@example("edge_tier_x=1; edge_tier=full", "edge_tier")  # the first occurrence is another cookie's name
@example("a=edge_tier; edge_tier=lite", "edge_tier")  # ...or in another cookie's value
@example("edge_tier; edge_tier=lite", "edge_tier")  # a part that is only the name: None, as before
@example("x" * _MAX_COOKIE_BYTES + "; edge_tier=lite", "edge_tier")  # past the bound: not read
def test_the_lookup_equals_splitting_the_whole_header(header, name):
    assert cookie(header, name) == split_whole_header(header, name)


def test_a_cookie_after_a_kilobyte_of_other_sites_cookies_is_found():
    header = "; ".join([f"_ga{i}=GA1.2.{i}" for i in range(80)] + ["edge_tier=lite", "cart=3"])
    assert cookie(header, "edge_tier") == "lite" and cookie(header, "edge_m") is None and len(header) > 1000
