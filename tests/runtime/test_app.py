"""The Edge object: admin endpoints, policy hot reload, checkpoints."""

from __future__ import annotations

import time
from pathlib import Path

from starlette.testclient import TestClient

from edge import Settings, build_edge
from edge.runtime.app import POLICY_POLL_S

DEMO = Path(__file__).resolve().parents[2] / "policies" / "demo.toml"


def write_policy(path: Path, name: str, lite_action: str = "drop") -> None:
    path.write_text(f'name = "{name}"\n[[widgets]]\nwidget = "ads"\npriority = 1\nlite = "{lite_action}"\n')


def test_admin_endpoints(tmp_path):
    edge = build_edge(Settings(policy=DEMO))
    admin = TestClient(edge.admin)
    assert admin.get("/healthz").text == "ok\n"
    assert admin.get("/readyz").status_code == 503  # the public app's lifespan has not run
    with TestClient(edge.public):
        assert admin.get("/readyz").status_code == 200
    assert "edge_requests_total" in admin.get("/metrics").text
    # The default model (auto, no prior) starts with the rules in force: the River model has seen no label.
    model = admin.get("/admin/model").json()
    assert (model["champion"], model["labels"], model["switches"]) == ("rules", 0, 0), model
    assert model["candidates"] == ["model", "rules", "last_request", "stacker"]
    rules_only = TestClient(build_edge(Settings(policy=DEMO, model="rules")).admin)
    assert rules_only.get("/admin/model").json() == {"champion": "rules", "tier_refusals": {}}


def test_reload_endpoint_keeps_the_old_policy_when_the_new_file_is_invalid(tmp_path, metric):
    path = tmp_path / "shop.toml"
    write_policy(path, "v1")
    edge = build_edge(Settings(policy=path))
    admin = TestClient(edge.admin)

    failures = metric("edge_policy_reloads_total", result="failure")
    write_policy(path, "v2", lite_action="hide")
    r = admin.post("/admin/policy/reload")
    assert r.status_code == 422
    body = r.json()
    assert (body["result"], body["policy"]) == ("failure", "v1")
    assert body["error"].startswith(f"{path}: widgets[0].lite: 'hide' is not one of keep, drop")
    assert edge.middleware.policy.name == "v1"
    assert metric("edge_policy_reloads_total", result="failure") == failures + 1

    write_policy(path, "v3")
    assert admin.post("/admin/policy/reload").json() == {"result": "success", "policy": "v3"}
    assert edge.middleware.policy.name == "v3"


def test_policy_file_changes_are_picked_up_while_serving(tmp_path):
    path = tmp_path / "shop.toml"
    write_policy(path, "v1")
    edge = build_edge(Settings(policy=path))
    with TestClient(edge.public):
        time.sleep(0.05)
        write_policy(path, "broken", lite_action="hide")
        _wait(lambda: False, seconds=POLICY_POLL_S * 2.5)  # a poll or two passes
        assert edge.middleware.policy.name == "v1"
        write_policy(path, "v2")
        assert _wait(lambda: edge.middleware.policy.name == "v2", seconds=POLICY_POLL_S * 5)


def _wait(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_policy_reload_asks_for_the_admin_token_when_one_is_set(tmp_path):
    path = tmp_path / "shop.toml"
    write_policy(path, "v1")
    admin = TestClient(build_edge(Settings(policy=path, admin_token="s3cret")).admin)
    assert admin.post("/admin/policy/reload").status_code == 401
    assert admin.post("/admin/policy/reload", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert admin.post("/admin/policy/reload", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_fresh_process_exports_every_table_and_status_class(metric):
    TestClient(build_edge(Settings(policy=DEMO)).admin).get("/metrics")
    text = TestClient(build_edge(Settings(policy=DEMO)).admin).get("/metrics").text
    for series in ('edge_table_entries{table="cells"}', 'edge_table_entries{table="replay_guard"}', 'edge_proxied_requests_total{code="5xx"}'):
        assert series in text


def test_a_periodic_checkpoint_is_taken_on_the_loop_and_written_off_it(tmp_path, monkeypatch):
    """The model is pickled on the event loop (where no request learns meanwhile: a consistent picture),
    and only the file is written in a thread; the file is what ``save`` writes, and loads."""
    import asyncio
    import threading

    from edge.learning.model.champion import ChampionChallenger
    from edge.runtime import app as app_module

    path = tmp_path / "model.ckpt"
    edge = build_edge(Settings(model="auto", checkpoint=str(path), checkpoint_interval_s=0.01, feedback_key="k" * 32))
    model = edge.model
    assert isinstance(model, ChampionChallenger)
    threads: dict[str, str] = {}
    take, write = ChampionChallenger.checkpoint_bytes, app_module.write_atomically

    def taking(self, **kwargs):
        threads["pickled"] = threading.current_thread().name
        return take(self, **kwargs)

    def writing(data, where):
        threads["written"] = threading.current_thread().name
        write(data, where)

    monkeypatch.setattr(ChampionChallenger, "checkpoint_bytes", taking)  # on the class: the instance is what gets pickled
    monkeypatch.setattr(app_module, "write_atomically", writing)

    async def run() -> str:
        task = asyncio.create_task(edge._checkpoint_periodically())
        for _ in range(500):
            if path.exists():
                break
            await asyncio.sleep(0.01)
        task.cancel()
        return threading.current_thread().name

    loop_thread = asyncio.run(run())
    assert threads["pickled"] == loop_thread
    assert threads["written"] != loop_thread
    restored = ChampionChallenger.load(path, key=app_module.checkpoint_key(edge.settings))
    assert restored.snapshot()["labels"] == model.snapshot()["labels"]
