"""The JSON path language of the ``[[json]]`` layout rules."""

import pytest

from edge.pipeline.rewrite.jsonpath import JsonPath


@pytest.mark.parametrize(
    ("path", "doc", "expected"),
    [
        ("$.a", {"a": 1, "b": 2}, [1]),
        ("$['a b']", {"a b": 1}, [1]),
        ('$["q\\"uote"]', {'q"uote': 2}, [2]),
        ("$.a[*]", {"a": [1, 2]}, [1, 2]),
        ("$.a.*", {"a": {"x": 1, "y": 2}}, [1, 2]),
        ("$.a[-1]", {"a": [1, 2, 3]}, [3]),
        ("$.a[5]", {"a": [1]}, []),
        ("$.a[?(@.p >= 2)]", {"a": [{"p": 1}, {"p": 2}, {"p": 3}, {"q": 9}, 7]}, [{"p": 2}, {"p": 3}]),
        ("$.a[?(@.w == 'ads')]", {"a": [{"w": "ads"}, {"w": "grid"}]}, [{"w": "ads"}]),
        ("$.a[?(@.w != \"ads\")]", {"a": [{"w": "ads"}, {"w": "grid"}]}, [{"w": "grid"}]),
        ("$.a[?(@.on == true)]", {"a": [{"on": True}, {"on": 1}, {"on": False}]}, [{"on": True}]),
        ("$.a[?(@.n == 1)]", {"a": [{"n": True}, {"n": 1}, {"n": 1.0}]}, [{"n": 1}, {"n": 1.0}]),
        ("$.a[?(@.x)]", {"a": [{"x": None}, {"y": 1}]}, [{"x": None}]),
        ("$.a[?(@.m.k < 0.5)]", {"a": [{"m": {"k": 0.1}}, {"m": {"k": "0.1"}}, {"m": 3}]}, [{"m": {"k": 0.1}}]),
        ("$.s[*].items", {"s": [{"items": [1]}, {"other": 2}, 3]}, [[1]]),
        ("$.a.b", {"a": [1]}, []),
    ],
)
def test_json_paths(path, doc, expected):
    assert [c[k] for c, k in JsonPath.parse(path).select(doc)] == expected
