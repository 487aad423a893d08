"""``edge policy check``: a policy file checked, and a sample page (file, URL or JSON) shown at each tier."""

from pathlib import Path

from click.testing import CliRunner

from edge.runtime.cli import main

POLICIES = sorted(Path(__file__).resolve().parents[2].joinpath("policies").glob("*.toml"))
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
