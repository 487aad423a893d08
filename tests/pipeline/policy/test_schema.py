"""The policy schema: what the TOML may say, and its errors naming the file, the key and the problem."""

import pytest

from edge import PolicyError
from edge.pipeline.policy import Policy

ERRORS = [
    ('[[widgets]]\nwidget = "a"\npriority = 1\n[[widgets]]\nwidget = "b"\npriority = 1\nlite = "hide"',
     "shop.toml: widgets[1].lite: 'hide' is not one of keep, drop, collapse, trim"),
    ("[tiers]\nlite = 1.5", "shop.toml: tiers.lite: Input should be less than or equal to 1 (got 1.5)"),
    ("[tiers]\nlite = 0.9\nminimal = 0.5", "shop.toml: tiers: minimal (0.5) must be ≥ lite (0.9)"),
    ('[[widgets]]\nwidget = "x"\npriority = 3\ncolour = "red"', "shop.toml: widgets[0].colour: unknown key"),
    ('[[widgets]]\nwidget = "x"', "shop.toml: widgets[0].priority: required key is missing"),
    ('[[widgets]]\nwidget = "x"\nselector = "p"\npriority = 1', "shop.toml: widgets[0]: give exactly one of 'widget' or 'selector'"),
    ('[overrides]\nsave_data = "tiny"', "shop.toml: overrides.save_data: 'tiny' is not one of full, lite, minimal"),
    ("[overrides]\nholdback = 0.7", "shop.toml: overrides.holdback: Input should be less than or equal to 0.5 (got 0.7)"),
    ("name = [", "shop.toml: not valid TOML"),
    ('[[widgets]]\nwidget = "r"\npriority = 1\nlite = "trim"', "shop.toml: widgets[0]: a 'trim' action needs 'keep = N'"),
    ('[[widgets]]\nwidget = "r"\npriority = 1\nkeep = 3', "shop.toml: widgets[0]: 'keep' only applies with a 'trim' action"),
    ('[[widgets]]\nwidget = "r"\npriority = 1\nurl = "/x"', "shop.toml: widgets[0]: 'url' only applies with a 'collapse' action"),
    ('[[widgets]]\nwidget = "r"\npriority = 1\nlite = "drop"\nplaceholder_tag = "li"',
     "shop.toml: widgets[0]: 'placeholder_tag' only applies with a 'collapse' action"),
    ('[[widgets]]\nwidget = "r"\npriority = 1\nplaceholder_class = "x"', "shop.toml: widgets[0]: 'placeholder_class' only applies with a 'collapse' action"),
    ('[[widgets]]\nwidget = "r"\npriority = 1\nlite = "trim"\nkeep = 2\nitem = "li li"', "shop.toml: widgets[0].item: String should match pattern"),
    ("[[images]]\nvariant = 'x'", "shop.toml: images[0]: 'variant' needs a 'src' pattern to rewrite"),
    ('[[images]]\ntiers = ["full"]', "shop.toml: images[0].tiers[0]: 'full' is not one of lite, minimal"),
    ("[[images]]\nmax_bytes = -1", "shop.toml: images[0].max_bytes: Input should be greater than or equal to 0 (got -1)"),
    ('[[scripts]]\nlite = "drop"', "shop.toml: scripts[0]: give 'selector', 'src' or both"),
    ('[[scripts]]\nsrc = "x"\nlite = "async"', "shop.toml: scripts[0].lite: 'async' is not one of keep, defer, drop"),
    ('[[json]]\npath = "$.a"\nlite = "trim"', "shop.toml: json[0]: a 'trim' action needs 'keep = N'"),
    ("[budget]\nlite = 0", "shop.toml: budget.lite: Input should be greater than 0 (got 0)"),
    ('[[routes]]\nname = "p"', "shop.toml: routes[0]: give exactly one of 'path' (a glob) or 'regex'"),
    ('[[routes]]\nname = "p"\npath = "product/*"', "shop.toml: routes[0]: a path glob starts with '/'"),
    ('[[routes]]\nname = "p"\npath = "/a"\n[[routes.widgets]]\nwidget = "x"\npriority = 1\nlite = "hide"',
     "shop.toml: routes[0].widgets[0].lite: 'hide' is not one of keep, drop, collapse, trim"),
    ("[tiers]\nlite = 2\nminimal = 3", "shop.toml: tiers.lite: Input should be less than or equal to 1 (got 2) (and 1 more problem)"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), ERRORS, ids=[m.split(": ")[1] for _, m in ERRORS])
def test_errors_name_file_key_and_problem(text, message):
    with pytest.raises(PolicyError) as info:
        Policy.from_toml(text, path="policies/shop.toml")
    assert str(info.value).startswith("policies/" + message), str(info.value)
