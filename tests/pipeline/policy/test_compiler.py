"""The policy compiler: selectors, patterns, templates and JSON paths checked at load; route rules merged."""

import pytest

from edge import PolicyError
from edge.pipeline.policy import Policy

ERRORS = [
    ('[[widgets]]\nselector = "div[["\npriority = 3', "shop.toml: widgets[0].selector: invalid CSS selector 'div[['"),
    ('[[widgets]]\nwidget = "r"\npriority = 1\nlite = "collapse"\nurl = "javascript:alert(1)"',
     "shop.toml: widgets[0].url: a widget URL starts with '/' or http(s)://"),
    ('[[widgets]]\nwidget = "r"\npriority = 1\nlite = "collapse"\nurl = "/f?id={a b}"',
     "shop.toml: widgets[0].url: {a b} is not a placeholder"),
    ('[[widgets]]\nwidget = "r"\npriority = 1\nlite = "collapse"\nurl = "/f?id={id"', "shop.toml: widgets[0].url: unbalanced brace"),
    ('[[widgets]]\nwidget = "r"\npriority = 1\nlite = "collapse"\nplaceholder_tag = "img"',
     "shop.toml: widgets[0].placeholder_tag: 'img' cannot hold the placeholder's link; use one of article, aside, dd, div"),
    ('[[widgets]]\nwidget = "r"\npriority = 1\nlite = "collapse"\nplaceholder_class = "{id} col"',
     "shop.toml: widgets[0].placeholder_class: {id} is not a placeholder: use {class} (the element's own classes)"),
    ('[[widgets]]\nwidget = "r"\npriority = 1\nlite = "collapse"\nplaceholder_class = "{class"', "shop.toml: widgets[0].placeholder_class: unbalanced brace"),
    ("[[widgets]]\nwidget = \"r\"\npriority = 1\nlite = \"collapse\"\nplaceholder_class = 'col\" onclick=\"x'",
     "shop.toml: widgets[0].placeholder_class: 'col\" onclick=\"x' is not a list of class names"),
    ('[[routes]]\nname = "p"\npath = "/a"\n[[routes.widgets]]\nwidget = "x"\npriority = 1\nlite = "collapse"\nplaceholder_tag = "table"',
     "shop.toml: routes[0].widgets[0].placeholder_tag: 'table' cannot hold the placeholder's link"),
    ('[[widgets]]\nwidget = "a"\npriority = 1\n[[widgets]]\nwidget = "a"\npriority = 2', "shop.toml: widgets[1]: duplicate of widgets[0] ('a')"),
    ("[[images]]\nsrc = '(unclosed'", "shop.toml: images[0].src: invalid regular expression '(unclosed': missing ), unterminated subpattern"),
    ("[[images]]\nsrc = '^(.+)$'\nvariant = '\\\\2?w=1'", "shop.toml: images[0].variant: refers to group '2', but 'src' has 1 group(s)"),
    ('[[images]]\nselector = "img:::"', "shop.toml: images[0].selector: invalid CSS selector"),
    ("[[scripts]]\nsrc = '*.js'", "shop.toml: scripts[0].src: invalid regular expression '*.js'"),
    ('[[json]]\npath = "sections"\nlite = "drop"', "shop.toml: json[0].path: invalid JSON path: at character 1 of 'sections': a path starts with '$'"),
    ('[[json]]\npath = "$.a[?(@.x ~ 1)]"\nlite = "drop"', "shop.toml: json[0].path: invalid JSON path: at character 5"),
    ('[[json]]\npath = "$"\nlite = "drop"', "shop.toml: json[0].path: invalid JSON path: '$' selects the whole document"),
    ('[[routes]]\nname = "p"\nregex = "^/p/(\\\\d+"', "shop.toml: routes[0].regex: invalid regular expression"),
    ('[[routes]]\nname = "p"\npath = "/a"\n[[routes]]\nname = "p"\npath = "/b"', "shop.toml: routes[1].name: route name 'p' is already used by routes[0]"),
    ('[[routes]]\nname = "p"\npath = "/a"\n[[routes.widgets]]\nselector = "##"\npriority = 1',
     "shop.toml: routes[0].widgets[0].selector: invalid CSS selector '##'"),
    ('[[routes]]\nname = "api"\npath = "/a"\n[[routes.json]]\npath = "$..x"\nlite = "drop"', "shop.toml: routes[0].json[0].path: invalid JSON path"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), ERRORS, ids=[m.split(": ")[1] for _, m in ERRORS])
def test_errors_name_file_key_and_problem(text, message):
    with pytest.raises(PolicyError) as info:
        Policy.from_toml(text, path="policies/shop.toml")
    assert str(info.value).startswith("policies/" + message), str(info.value)


def test_trim_selector_lists_are_split():
    policy = Policy.from_toml('[[widgets]]\nselector = "ul.a, ol[data-x=\\"1,2\\"]"\npriority = 1\nlite = "trim"\nkeep = 0')
    assert policy.default.widgets[0].trim_css == 'ul.a > :nth-child(n+1), ol[data-x="1,2"] > :nth-child(n+1)'


def test_collapse_placeholder_settings_compile():
    policy = Policy.from_toml(
        '[[widgets]]\nwidget = "recs"\npriority = 1\nlite = "collapse"\nplaceholder_tag = "LI"\nplaceholder_class = " {class}   skeleton "\n'
        '[[widgets]]\nwidget = "ads"\npriority = 1\nlite = "collapse"\n'
    )
    recs, ads = policy.default.widgets
    assert (recs.placeholder_tag, recs.placeholder_class) == ("li", "{class} skeleton")
    assert (ads.placeholder_tag, ads.placeholder_class) == (None, "{class}")  # the element's own tag and classes
