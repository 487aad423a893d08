"""The policy language: schema, compiled routes, decisions and every error message."""

from pathlib import Path

import pytest

from edge import PolicyError, load_policy
from edge.pipeline.policy import JsonPath, Policy, declared_image_bytes, holdback_draw

POLICIES = sorted(Path(__file__).resolve().parents[2].joinpath("policies").glob("*.toml"))


def test_bundled_policies_exist():
    assert POLICIES


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_bundled_policies_load(path):
    policy = load_policy(path)
    assert policy.lite_threshold <= policy.minimal_threshold
    for route in policy.routes:
        assert route.drop_selectors("full") == ()


def test_demo_policy_keeps_the_essentials():
    policy = load_policy(POLICIES[0].parent / "demo.toml")
    dropped = " ".join(policy.drop_selectors("lite"))
    for essential in ("header", "search", "product-grid", "cart"):
        assert f'"{essential}"' not in dropped
    for extra in ("carousel", "recommendations", "reviews", "video", "ads", "chat"):
        assert f'"{extra}"' in dropped


def test_demo_policy_routes():
    policy = load_policy(POLICIES[0].parent / "demo.toml")
    assert [policy.for_path(p).name for p in ("/", "/search", "/product/3", "/cart", "/api/layout/home", "/checkout")] == [
        "home", "search", "product", "cart", "api", "default",
    ]  # fmt: skip
    product = policy.for_path("/product/3")
    assert product.lite_threshold == 0.4
    reviews = next(w for w in product.widgets if w.name == "reviews")
    assert reviews.actions["lite"] == "collapse" and reviews.label == "Show reviews"
    assert next(w for w in policy.default.widgets if w.name == "reviews").actions["lite"] == "drop"


ERRORS = [
    ('[[widgets]]\nwidget = "a"\npriority = 1\n[[widgets]]\nwidget = "b"\npriority = 1\nlite = "hide"',
     "shop.toml: widgets[1].lite: 'hide' is not one of keep, drop, collapse, trim"),
    ("[tiers]\nlite = 1.5", "shop.toml: tiers.lite: Input should be less than or equal to 1 (got 1.5)"),
    ("[tiers]\nlite = 0.9\nminimal = 0.5", "shop.toml: tiers: minimal (0.5) must be ≥ lite (0.9)"),
    ('[[widgets]]\nselector = "div[["\npriority = 3', "shop.toml: widgets[0].selector: invalid CSS selector 'div[['"),
    ('[[widgets]]\nwidget = "x"\npriority = 3\ncolour = "red"', "shop.toml: widgets[0].colour: unknown key"),
    ('[[widgets]]\nwidget = "x"', "shop.toml: widgets[0].priority: required key is missing"),
    ('[[widgets]]\nwidget = "x"\nselector = "p"\npriority = 1', "shop.toml: widgets[0]: give exactly one of 'widget' or 'selector'"),
    ('[overrides]\nsave_data = "tiny"', "shop.toml: overrides.save_data: 'tiny' is not one of full, lite, minimal"),
    ("[overrides]\nholdback = 0.7", "shop.toml: overrides.holdback: Input should be less than or equal to 0.5 (got 0.7)"),
    ("name = [", "shop.toml: not valid TOML"),
    ('[[widgets]]\nwidget = "r"\npriority = 1\nlite = "trim"', "shop.toml: widgets[0]: a 'trim' action needs 'keep = N'"),
    ('[[widgets]]\nwidget = "r"\npriority = 1\nkeep = 3', "shop.toml: widgets[0]: 'keep' only applies with a 'trim' action"),
    ('[[widgets]]\nwidget = "r"\npriority = 1\nurl = "/x"', "shop.toml: widgets[0]: 'url' only applies with a 'collapse' action"),
    ('[[widgets]]\nwidget = "r"\npriority = 1\nlite = "collapse"\nurl = "javascript:alert(1)"',
     "shop.toml: widgets[0].url: a widget URL starts with '/' or http(s)://"),
    ('[[widgets]]\nwidget = "r"\npriority = 1\nlite = "collapse"\nurl = "/f?id={a b}"',
     "shop.toml: widgets[0].url: {a b} is not a placeholder"),
    ('[[widgets]]\nwidget = "r"\npriority = 1\nlite = "collapse"\nurl = "/f?id={id"', "shop.toml: widgets[0].url: unbalanced brace"),
    ('[[widgets]]\nwidget = "r"\npriority = 1\nlite = "drop"\nplaceholder_tag = "li"',
     "shop.toml: widgets[0]: 'placeholder_tag' only applies with a 'collapse' action"),
    ('[[widgets]]\nwidget = "r"\npriority = 1\nplaceholder_class = "x"', "shop.toml: widgets[0]: 'placeholder_class' only applies with a 'collapse' action"),
    ('[[widgets]]\nwidget = "r"\npriority = 1\nlite = "collapse"\nplaceholder_tag = "img"',
     "shop.toml: widgets[0].placeholder_tag: 'img' cannot hold the placeholder's link; use one of article, aside, dd, div"),
    ('[[widgets]]\nwidget = "r"\npriority = 1\nlite = "collapse"\nplaceholder_class = "{id} col"',
     "shop.toml: widgets[0].placeholder_class: {id} is not a placeholder: use {class} (the element's own classes)"),
    ('[[widgets]]\nwidget = "r"\npriority = 1\nlite = "collapse"\nplaceholder_class = "{class"', "shop.toml: widgets[0].placeholder_class: unbalanced brace"),
    ("[[widgets]]\nwidget = \"r\"\npriority = 1\nlite = \"collapse\"\nplaceholder_class = 'col\" onclick=\"x'",
     "shop.toml: widgets[0].placeholder_class: 'col\" onclick=\"x' is not a list of class names"),
    ('[[routes]]\nname = "p"\npath = "/a"\n[[routes.widgets]]\nwidget = "x"\npriority = 1\nlite = "collapse"\nplaceholder_tag = "table"',
     "shop.toml: routes[0].widgets[0].placeholder_tag: 'table' cannot hold the placeholder's link"),
    ('[[widgets]]\nwidget = "r"\npriority = 1\nlite = "trim"\nkeep = 2\nitem = "li li"', "shop.toml: widgets[0].item: String should match pattern"),
    ('[[widgets]]\nwidget = "a"\npriority = 1\n[[widgets]]\nwidget = "a"\npriority = 2', "shop.toml: widgets[1]: duplicate of widgets[0] ('a')"),
    ("[[images]]\nsrc = '(unclosed'", "shop.toml: images[0].src: invalid regular expression '(unclosed': missing ), unterminated subpattern"),
    ("[[images]]\nvariant = 'x'", "shop.toml: images[0]: 'variant' needs a 'src' pattern to rewrite"),
    ("[[images]]\nsrc = '^(.+)$'\nvariant = '\\\\2?w=1'", "shop.toml: images[0].variant: refers to group '2', but 'src' has 1 group(s)"),
    ('[[images]]\nselector = "img:::"', "shop.toml: images[0].selector: invalid CSS selector"),
    ('[[images]]\ntiers = ["full"]', "shop.toml: images[0].tiers[0]: 'full' is not one of lite, minimal"),
    ("[[images]]\nmax_bytes = -1", "shop.toml: images[0].max_bytes: Input should be greater than or equal to 0 (got -1)"),
    ('[[scripts]]\nlite = "drop"', "shop.toml: scripts[0]: give 'selector', 'src' or both"),
    ('[[scripts]]\nsrc = "x"\nlite = "async"', "shop.toml: scripts[0].lite: 'async' is not one of keep, defer, drop"),
    ("[[scripts]]\nsrc = '*.js'", "shop.toml: scripts[0].src: invalid regular expression '*.js'"),
    ('[[json]]\npath = "sections"\nlite = "drop"', "shop.toml: json[0].path: invalid JSON path: at character 1 of 'sections': a path starts with '$'"),
    ('[[json]]\npath = "$.a[?(@.x ~ 1)]"\nlite = "drop"', "shop.toml: json[0].path: invalid JSON path: at character 5"),
    ('[[json]]\npath = "$"\nlite = "drop"', "shop.toml: json[0].path: invalid JSON path: '$' selects the whole document"),
    ('[[json]]\npath = "$.a"\nlite = "trim"', "shop.toml: json[0]: a 'trim' action needs 'keep = N'"),
    ("[budget]\nlite = 0", "shop.toml: budget.lite: Input should be greater than 0 (got 0)"),
    ('[[routes]]\nname = "p"', "shop.toml: routes[0]: give exactly one of 'path' (a glob) or 'regex'"),
    ('[[routes]]\nname = "p"\npath = "product/*"', "shop.toml: routes[0]: a path glob starts with '/'"),
    ('[[routes]]\nname = "p"\nregex = "^/p/(\\\\d+"', "shop.toml: routes[0].regex: invalid regular expression"),
    ('[[routes]]\nname = "p"\npath = "/a"\n[[routes]]\nname = "p"\npath = "/b"', "shop.toml: routes[1].name: route name 'p' is already used by routes[0]"),
    ('[[routes]]\nname = "p"\npath = "/a"\n[[routes.widgets]]\nwidget = "x"\npriority = 1\nlite = "hide"',
     "shop.toml: routes[0].widgets[0].lite: 'hide' is not one of keep, drop, collapse, trim"),
    ('[[routes]]\nname = "p"\npath = "/a"\n[[routes.widgets]]\nselector = "##"\npriority = 1',
     "shop.toml: routes[0].widgets[0].selector: invalid CSS selector '##'"),
    ('[[routes]]\nname = "api"\npath = "/a"\n[[routes.json]]\npath = "$..x"\nlite = "drop"', "shop.toml: routes[0].json[0].path: invalid JSON path"),
    ("[tiers]\nlite = 2\nminimal = 3", "shop.toml: tiers.lite: Input should be less than or equal to 1 (got 2) (and 1 more problem)"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), ERRORS, ids=[m.split(": ")[1] for _, m in ERRORS])
def test_errors_name_file_key_and_problem(text, message):
    with pytest.raises(PolicyError) as info:
        Policy.from_toml(text, path="policies/shop.toml")
    assert str(info.value).startswith("policies/" + message), str(info.value)


def test_unreadable_file_is_a_policy_error(tmp_path):
    with pytest.raises(PolicyError, match="missing.toml: cannot read"):
        load_policy(tmp_path / "missing.toml")


def test_decision_order_preference_then_save_data_then_holdback_then_prediction():
    policy = Policy.from_toml("[overrides]\nholdback = 0.1")
    assert policy.decide(0.99, preference="full").tier == "full"
    assert policy.decide(0.99, preference="full").reason == "preference"
    assert policy.decide(0.01, preference="lite", holdback_draw=0.0).tier == "lite"
    assert policy.decide(0.01, save_data=True).tier == "lite"
    assert policy.decide(0.01, save_data=True, holdback_draw=0.0).reason == "save-data"
    assert policy.decide(0.01, save_data=True).source == "override"
    held = policy.decide(0.99, holdback_draw=0.09999)
    assert (held.tier, held.reason, held.source, held.p) == ("full", "holdback", "holdback", 0.99)
    assert policy.decide(0.99, holdback_draw=0.1).tier == "minimal"
    assert policy.decide(None, holdback_draw=0.5).reason == "unknown"
    assert policy.decide(None).reason == "unknown"
    assert policy.decide(0.6, source="model").source == "model"
    assert policy.decide(0.6, preference="bogus").tier == "lite"


def test_no_holdback_share_means_no_holdback():
    assert Policy.from_toml("[overrides]\nholdback = 0").decide(0.99, holdback_draw=0.0).tier == "minimal"
    assert Policy.from_toml("").decide(0.99, holdback_draw=0.0).tier == "full"  # the default holdback is 5%


def test_holdback_draw_is_stable_and_spread():
    draws = [holdback_draw(f"client-{i}") for i in range(2000)]
    assert draws == [holdback_draw(f"client-{i}") for i in range(2000)]
    assert all(0 <= d < 1 for d in draws)
    assert 0.03 < sum(d < 0.05 for d in draws) / len(draws) < 0.07


def test_save_data_can_be_ignored_by_policy():
    policy = Policy.from_toml('[overrides]\nsave_data = "full"')
    assert policy.decide(None, save_data=True).tier == "full"


ROUTES = Policy.from_toml(
    """
[tiers]
lite = 0.5
minimal = 0.9
[[widgets]]
widget = "ads"
priority = 1
lite = "drop"
[[widgets]]
widget = "reviews"
priority = 40
[[images]]
lazy = true
[[routes]]
name = "product"
path = "/product/*"
tiers = { lite = 0.2, minimal = 0.6 }
  [[routes.widgets]]
  widget = "reviews"
  priority = 40
  lite = "collapse"
  [[routes.widgets]]
  selector = "ul.related"
  priority = 20
  lite = "trim"
  keep = 2
  item = "li"
[[routes]]
name = "api"
path = "/api/**"
images = []
[[routes]]
name = "legacy"
regex = '^/p/\\d+(\\.html)?$'
[[routes]]
name = "any-product"
path = "/product/**"
"""
)


@pytest.mark.parametrize(
    ("path", "route"),
    [("/", "default"), ("/product/7", "product"), ("/product/7?x=1", "product"), ("/product/7/reviews", "any-product"),
     ("/api/v1/layout", "api"), ("/api", "default"), ("/p/12.html", "legacy"), ("/p/x", "default"), ("/product/", "product")],
)  # fmt: skip
def test_routes_first_match_wins(path, route):
    assert ROUTES.for_path(path).name == route


def test_route_overrides_thresholds_widgets_and_rule_lists():
    product = ROUTES.for_path("/product/1")
    assert ROUTES.decide(0.3, path="/product/1").tier == "lite"
    assert ROUTES.decide(0.3, path="/product/1").route == "product"
    assert ROUTES.decide(0.3, path="/").tier == "full"
    assert ROUTES.decide(0.7, path="/product/1").tier == "minimal"
    assert [(w.name, w.actions["lite"]) for w in product.widgets] == [("ads", "drop"), ("reviews", "collapse"), ("ul.related", "trim")]
    assert product.widgets[2].trim_css == "ul.related > li:nth-of-type(n+3)"
    assert len(product.images) == 1 and ROUTES.for_path("/api/x").images == ()
    assert ROUTES.drop_selectors("lite", "/product/1") == ('[data-edge-widget="ads"]',)


def test_trim_selector_lists_are_split():
    policy = Policy.from_toml('[[widgets]]\nselector = "ul.a, ol[data-x=\\"1,2\\"]"\npriority = 1\nlite = "trim"\nkeep = 0')
    assert policy.default.widgets[0].trim_css == 'ul.a > :nth-child(n+1), ol[data-x="1,2"] > :nth-child(n+1)'


def test_declared_image_bytes():
    assert declared_image_bytes({"data-edge-bytes": "12", "width": "1", "height": "1"}) == 12
    assert declared_image_bytes({"width": "100", "height": "50"}, 0.25) == 1250
    assert declared_image_bytes({"width": "100", "height": "auto"}) is None
    assert declared_image_bytes({"data-edge-bytes": "lots"}) is None
    assert declared_image_bytes({"data-edge-bytes": "٣"}) is None  # a non-ASCII digit is not a size


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


# ---------------------------------------------------------------- edge policy check --page

from click.testing import CliRunner  # noqa: E402

from edge.runtime.cli import main  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def test_policy_check_prints_each_tier_for_a_sample_page():
    result = CliRunner().invoke(
        main, ["policy", "check", str(POLICIES[0].parent / "demo.toml"), "--page", str(CORPUS / "09-shopify-like.html"), "--path", "/product/1"]
    )
    assert result.exit_code == 0, result.output
    assert "route 'product'" in result.output
    for line in ("  full ", "  lite ", "  minimal "):
        assert line in result.output
    assert "collapsed: reviews" in result.output and "dropped: recommendations, chat" in result.output
    assert "B HTML +" in result.output


def test_policy_check_fetches_a_url(monkeypatch):
    import httpx

    def fake_get(url, **kw):
        return httpx.Response(
            200, content=(CORPUS / "01-latin1-meta-charset.html").read_bytes(),
            headers={"content-type": "text/html; charset=ISO-8859-1"}, request=httpx.Request("GET", url),
        )  # fmt: skip

    monkeypatch.setattr(httpx, "get", fake_get)
    result = CliRunner().invoke(main, ["policy", "check", str(POLICIES[0].parent / "demo.toml"), "--page", "http://shop.test/search"])
    assert result.exit_code == 0, result.output
    assert "(ISO-8859-1) at /search → route 'search'" in result.output


def test_policy_check_json_page(tmp_path):
    page = tmp_path / "layout.json"
    page.write_bytes(b'{"sections": [{"widget": "ads", "priority": 1, "items": []}]}')
    result = CliRunner().invoke(main, ["policy", "check", str(POLICIES[0].parent / "demo.toml"), "--page", str(page), "--path", "/api/x"])
    assert result.exit_code == 0, result.output
    assert "lite" in result.output and "B JSON" in result.output


def test_policy_check_unreadable_page_exits_1(tmp_path):
    result = CliRunner().invoke(main, ["policy", "check", str(POLICIES[0].parent / "demo.toml"), "--page", str(tmp_path / "nope.html")])
    assert result.exit_code == 1 and "cannot read page" in result.output


def test_policy_check_bad_file_names_file_key_and_problem(tmp_path):
    bad = tmp_path / "shop.toml"
    bad.write_text('[[routes]]\nname = "p"\npath = "/p/*"\n[[routes.images]]\nsrc = "(("\n')
    result = CliRunner().invoke(main, ["policy", "check", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}: routes[0].images[0].src: invalid regular expression '(('" in result.output


def test_collapse_placeholder_settings_compile():
    policy = Policy.from_toml(
        '[[widgets]]\nwidget = "recs"\npriority = 1\nlite = "collapse"\nplaceholder_tag = "LI"\nplaceholder_class = " {class}   skeleton "\n'
        '[[widgets]]\nwidget = "ads"\npriority = 1\nlite = "collapse"\n'
    )
    recs, ads = policy.default.widgets
    assert (recs.placeholder_tag, recs.placeholder_class) == ("li", "{class} skeleton")
    assert (ads.placeholder_tag, ads.placeholder_class) == (None, "{class}")  # the element's own tag and classes
