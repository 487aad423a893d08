"""deploy/Dockerfile, checked statically: there is no Docker daemon here, so it is never built in CI."""

from __future__ import annotations

import json
import re
import shlex

from _deploy import DEPLOY, ROOT


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    lines, current = [], ""
    for raw in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        current += " " + stripped.rstrip("\\").strip() if current else stripped.rstrip("\\").strip()
        if not stripped.endswith("\\"):
            lines.append(current)
            current = ""
    assert not current, "dangling line continuation"
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[last_from:]


def test_base_images_are_python_slim_pinned_by_tag() -> None:
    for op, args in _instructions():
        if op == "FROM":
            image = args.split()[0]
            assert re.fullmatch(r"python:3\.\d+\.\d+-slim(-\w+)?", image), image


def test_runs_as_a_non_root_user() -> None:
    users = [args for op, args in _final_stage() if op == "USER"]
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_healthcheck_probes_admin_healthz() -> None:
    (check,) = [args for op, args in _final_stage() if op == "HEALTHCHECK"]
    assert "/healthz" in check and "EDGE_ADMIN_PORT" in check
    command = json.loads(check.split("CMD", 1)[1])
    assert command[0] == "python"  # no curl in the slim image


def test_exposes_public_and_admin_ports_and_binds_all_interfaces() -> None:
    stage = _final_stage()
    exposed = {port for op, args in stage if op == "EXPOSE" for port in args.split()}
    assert exposed == {"8080", "9090"}
    env = dict(pair.split("=", 1) for op, args in stage if op == "ENV" for pair in shlex.split(args))
    assert env["EDGE_HOST"] == "0.0.0.0" and env["EDGE_ADMIN_HOST"] == "0.0.0.0"
    assert (env["EDGE_PORT"], env["EDGE_ADMIN_PORT"]) == ("8080", "9090")
    assert env["EDGE_POLICY"] == "/etc/edge/policy.toml" and env["EDGE_CHECKPOINT"].startswith("/var/lib/edge/")


def test_entrypoint_runs_edge_serve() -> None:
    (entrypoint,) = [args for op, args in _final_stage() if op == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["edge", "serve"]


def test_copied_sources_exist() -> None:
    for op, args in _instructions():
        if op == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source
