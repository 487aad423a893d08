"""edge.pipeline.structured_fields: the fast path reads every dictionary exactly as http_sfv does.

The property compares the two readings member for member, by value *and* type (a dict comparison alone
would take ``True`` for ``1`` and a Token for a string), over well-formed dictionaries of every bare-item
type with random whitespace, the same with one character changed, inserted or deleted (the edges of the
grammar: digit counts, escapes, separators), and arbitrary text.
"""

from __future__ import annotations

import string
from decimal import Decimal

import http_sfv
from hypothesis import example, given, settings
from hypothesis import strategies as st

from edge.pipeline import structured_fields
from edge.pipeline.structured_fields import sf_dictionary, sf_dictionary_by_http_sfv


def _typed(members):
    return None if members is None else sorted((key, type(value).__name__, value) for key, value in members.items())


keys = st.from_regex(r"[a-z*][a-z0-9_\-.*]{0,6}", fullmatch=True)
integers = st.integers(-(10**16), 10**16).map(str)  # (16 digits too: past the grammar's 15)
decimals = st.builds(
    lambda whole, fraction, negative: ("-" if negative else "") + str(whole) + "." + fraction,
    st.integers(0, 10**13), st.from_regex(r"[0-9]{1,4}", fullmatch=True), st.booleans(),
)  # (up to 13 digits and 4 places: past the grammar's 12 and 3 as well)
strings = st.text(st.sampled_from(string.printable + 'é"\\'), max_size=12).map(
    lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
)
tokens = st.from_regex(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]{0,8}", fullmatch=True)
values = st.one_of(integers, decimals, strings, tokens, st.sampled_from(["?0", "?1", "?2", ":aGk=:", "(1 2)", "1;q=2", 'a;b']))
members = st.one_of(keys, st.builds(lambda k, v: f"{k}={v}", keys, values))
spaces = st.sampled_from(["", " ", "  ", "\t", " \t "])
dictionaries = st.builds(
    lambda lead, items, seps, trail: lead + "".join(m + (seps[i % len(seps)] if i < len(items) - 1 else "") for i, m in enumerate(items)) + trail,
    st.sampled_from(["", " ", "\t"]),
    st.lists(members, min_size=1, max_size=6),
    st.lists(st.builds(lambda a, b: a + "," + b, spaces, spaces), min_size=1, max_size=3),
    spaces,
)


@st.composite
def edited(draw):
    text = draw(dictionaries)
    at = draw(st.integers(0, len(text)))
    char = draw(st.sampled_from(list('0123456789.,;=" \t\\-?*:()azAZ') + ["é", "\x7f", "٣"]))
    edit = draw(st.sampled_from(["insert", "replace", "delete"]))
    if edit == "insert":
        return text[:at] + char + text[at:]
    if edit == "replace":
        return text[:at] + char + text[at + 1 :]
    return text[:at] + text[at + 1 :]


@settings(max_examples=1500, deadline=None)
@given(st.one_of(dictionaries, edited(), st.text(max_size=40)))
@example('ms=840, ttfb=300, bytes=51200, cell="404-45-1207-88120"')
@example("a=1, a=?0")  # a repeated key: the last value, as RFC 8941 §4.2.2 says
@example("a=1234567890123.5")  # 13 digits before the point: not a decimal
@example("a=1234567890123456")  # 16 digits: not an integer
@example("a=1.5, ")  # a trailing comma
@example("a=٣")  # an Arabic-Indic digit: not an ASCII digit
@example("")
def test_the_fast_path_reads_every_dictionary_as_http_sfv_does(raw):
    assert _typed(sf_dictionary(raw)) == _typed(sf_dictionary_by_http_sfv(raw))


def test_simple_dictionaries_never_reach_http_sfv(monkeypatch):
    """The fast path is taken (the property above would hold even if it never were)."""

    def refuse(raw):
        raise AssertionError(f"http_sfv asked for {raw!r}")

    monkeypatch.setattr(structured_fields, "sf_dictionary_by_http_sfv", refuse)
    got = sf_dictionary(' ms=840,ttfb=300.25 ,\tcell="404-45\\"x\\\\", radio=LTE/5g:x, fresh, seen=?0, c=-0.000 \t')
    assert got == {
        "ms": 840, "ttfb": Decimal("300.25"), "cell": '404-45"x\\', "radio": "LTE/5g:x", "fresh": True, "seen": False,
        "c": Decimal("-0.000"),
    }  # fmt: skip
    assert type(got["radio"]) is http_sfv.Token and type(got["cell"]) is str and type(got["fresh"]) is bool
