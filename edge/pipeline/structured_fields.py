"""RFC 8941 structured-field dictionaries as edge reads them: a fast path for the simple ones.

``Edge-Last-Request`` (``ms=840, ttfb=300, bytes=51200, cell="404-45-1207-88120"``) comes with a
client's requests and differs on every one, so it is parsed on every one. http_sfv, the maintained
parser, reads it character by character in Python (~11 µs here, the largest part of reading a
request's signals). Nearly every such header is a plain list of ``key=value`` members whose values are
integers, decimals, strings, tokens or booleans: :func:`sf_dictionary` reads those with one regular
expression per member (~2.5 µs) and gives everything else (parameters, inner lists, byte sequences,
anything malformed) to http_sfv. The two agree on every input: the result is http_sfv's, member for
member, value for value and type for type (``tests/pipeline/test_structured_fields.py``, a Hypothesis
property over well-formed, near-well-formed and random headers).

    >>> sf_dictionary('ms=840, ttfb=300.5, cell="404-45-1207-88120", radio=lte, fresh')
    {'ms': 840, 'ttfb': Decimal('300.5'), 'cell': '404-45-1207-88120', 'radio': 'lte', 'fresh': True}
    >>> sf_dictionary("ms=840;q=1")                 # a parameter: http_sfv's reading (edge keeps the bare value)
    {'ms': 840}
    >>> sf_dictionary("ms=840,") is None             # malformed (a trailing comma): no members at all
    True
"""

from __future__ import annotations

import re
from decimal import Decimal

import http_sfv

__all__ = ["sf_dictionary", "sf_dictionary_by_http_sfv"]

#: One member, then what must follow it: a comma and the next member's first character, or the end.
#: Groups: key, integer part, fraction, string (escapes still in), token, boolean. ASCII classes only
#: (``[0-9]``, not ``\d``, which matches other scripts' digits).
_MEMBER = re.compile(
    r"([a-z*][a-z0-9_\-.*]*)"
    r"(?:=(?:(-?[0-9]{1,15})(\.[0-9]{1,3})?"
    r'|"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\\"])*)"'
    r"|([A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*)"
    r"|\?([01])))?"
    r"(?:[ \t]*,[ \t]*(?=[a-z*])|[ \t]*\Z)"
)
_ESCAPED = re.compile(r"\\(.)")


def sf_dictionary(raw: str) -> dict[str, object] | None:
    """The bare-item members of the dictionary ``raw`` ({key: value}); None when ``raw`` is not one.

    Values are as http_sfv gives them: ``int``, ``decimal.Decimal``, ``str``, ``http_sfv.Token``,
    ``bool`` or ``bytes``; members that are inner lists are left out; parameters are dropped."""
    members: dict[str, object] = {}
    pos = len(raw) - len(raw.lstrip(" "))  # (leading SP only: RFC 8941 §4.2)
    end = len(raw)
    match = _MEMBER.match
    while pos < end:
        m = match(raw, pos)
        if m is None:
            return sf_dictionary_by_http_sfv(raw)
        key, integer, fraction, string, token, boolean = m.groups()
        if integer is not None:
            if fraction is None:
                members[key] = int(integer)
            elif len(integer) - (integer[0] == "-") > 12:
                return sf_dictionary_by_http_sfv(raw)  # a decimal's integer part has at most 12 digits
            else:
                members[key] = Decimal(integer + fraction)
        elif string is not None:
            members[key] = _ESCAPED.sub(r"\1", string) if "\\" in string else string
        elif token is not None:
            members[key] = http_sfv.Token(token)
        else:
            members[key] = boolean != "0"  # (None: a bare key, which is True)
        pos = m.end()
    return members if members else sf_dictionary_by_http_sfv(raw)


def sf_dictionary_by_http_sfv(raw: str) -> dict[str, object] | None:
    """:func:`sf_dictionary` by http_sfv alone (the reference, and the path for all but the simple ones)."""
    parsed = http_sfv.Dictionary()
    try:
        parsed.parse(raw.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None
    # Members are Items (value + params) or InnerLists; edge only uses bare items.
    return {k: v.value for k, v in parsed.items() if isinstance(v, http_sfv.Item)}
