from pathlib import Path

import pytest
from click.testing import CliRunner

from edge import Settings, SettingsError
from edge.runtime.cli import main

DEMO_POLICY = Path(__file__).resolve().parents[2] / "policies" / "demo.toml"


def test_policy_check_accepts_the_demo_policy():
    result = CliRunner().invoke(main, ["policy", "check", str(DEMO_POLICY)])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output and "carousel" in result.output


def test_policy_check_names_file_key_and_problem(tmp_path):
    bad = tmp_path / "shop.toml"
    bad.write_text('[[widgets]]\nwidget = "ads"\npriority = 1\nlite = "hide"\n')
    result = CliRunner().invoke(main, ["policy", "check", str(DEMO_POLICY), str(bad)])
    assert result.exit_code == 1
    assert f"{bad}: widgets[0].lite: 'hide' is not one of keep, drop" in result.output  # (, collapse, trim…)


def test_policy_check_lists_a_selector_once_with_its_count(tmp_path):
    policy = tmp_path / "shop.toml"
    policy.write_text(
        '[[widgets]]\nselector = "div.tile"\npriority = 10\nlite = "drop"\nminimal = "collapse"\n'
        '[[widgets]]\nwidget = "header"\npriority = 100\n'
        '[[widgets]]\nwidget = "ads"\npriority = 1\nlite = "drop"\n'
    )
    page = tmp_path / "page.html"
    tiles = "".join(f'<div class="tile">{i}</div>' for i in range(12))
    page.write_text(f'<html><body><header data-edge-widget="header">h</header>{tiles}<div data-edge-widget="ads">a</div></body></html>')
    result = CliRunner().invoke(main, ["policy", "check", str(policy), "--page", str(page)])
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    assert "kept: header, div.tile ×12, ads" in lines  # full
    assert "kept: header" in lines and "dropped: div.tile ×12, ads" in lines  # lite
    assert "collapsed: div.tile ×12" in lines  # minimal
    assert "div.tile, div.tile" not in result.output


def test_settings_from_env_and_flags():
    s = Settings.from_env({"EDGE_UPSTREAM": "http://shop:80", "EDGE_PORT": "81", "EDGE_PRESERVE_HOST": "yes"}, port=82)
    assert (s.upstream, s.port, s.preserve_host) == ("http://shop:80", 82, True)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EDGE_PORT": "eighty"}, "EDGE_PORT: 'eighty' is not a valid int"),
        ({"EDGE_READ_TIMEOUT": "-1"}, "EDGE_READ_TIMEOUT: '-1' is not a valid float"),
        ({"EDGE_FAIL_MODE": "maybe"}, "EDGE_FAIL_MODE: 'maybe' is not 'open' or 'closed'"),
        ({"EDGE_PRESERVE_HOST": "perhaps"}, "EDGE_PRESERVE_HOST: 'perhaps' is not a valid bool"),
    ],
)
def test_bad_settings_name_the_variable(env, message):
    with pytest.raises(SettingsError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env)


def test_serve_rejects_a_bad_env_value_with_a_usage_error():
    result = CliRunner().invoke(main, ["serve"], env={"EDGE_PORT": "eighty"})
    assert result.exit_code == 2
    assert "EDGE_PORT: 'eighty' is not a valid int" in result.output


def test_short_feedback_keys_are_refused_with_the_variable_name():
    with pytest.raises(SettingsError, match="EDGE_FEEDBACK_KEY: must be at least 16 bytes"):
        Settings.from_env({"EDGE_FEEDBACK_KEY": "short"})
    assert Settings.from_env({"EDGE_FEEDBACK_KEY": "0123456789abcdef0123"}).feedback_key == "0123456789abcdef0123"


def test_a_setting_with_fixed_values_refuses_anything_else_naming_the_variable():
    from edge.core.errors import SettingsError
    from edge.core.settings import Settings

    with pytest.raises(SettingsError, match="EDGE_MODEL: 'rivr' is not 'auto' or 'rules' or 'river' or 'off'"):
        Settings.from_env({"EDGE_MODEL": "rivr"})
    with pytest.raises(SettingsError, match="EDGE_LOG_LEVEL"):
        Settings.from_env({"EDGE_LOG_LEVEL": "loud"})
    assert Settings.from_env({"EDGE_WORKERS": "3"}).workers == 3


def test_the_model_names_a_setting_allows_are_the_models_edge_builds():
    from typing import get_args

    from edge.core.settings import ModelName
    from edge.learning.model import MODELS

    assert set(get_args(ModelName)) == set(MODELS)


def test_the_cli_offers_the_settings_own_choices():
    from click.testing import CliRunner

    from edge.runtime.cli import main

    result = CliRunner().invoke(main, ["serve", "--model", "rivr"])
    assert result.exit_code == 2 and "'rivr' is not one of 'auto', 'rules', 'river', 'off'" in result.output
