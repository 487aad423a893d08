from pathlib import Path

import pytest
from click.testing import CliRunner

from edge import Settings, SettingsError
from edge.cli import main

DEMO_POLICY = Path(__file__).resolve().parent.parent / "policies" / "demo.toml"


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
