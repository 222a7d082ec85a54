"""The service's API in-process (Starlette's test client): reads, incremental fetch, commands, 4xx, security."""

import json
import shutil

import pytest
from fastapi.testclient import TestClient

from fake_openai_server import FakeOpenAI, cycling_toy_answers
from searchmgr import tree as T
from searchmgr.commands import HUMAN, apply_commands
from searchmgr.search import explore, resume_run
from searchmgr.serve.app import create_app
from searchmgr.serve.runs import name_runs
from searchmgr.store import CommandKind, CommandStatus, TreeStore

SECRET = "sk-serve-SECRET-77c1a0"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("serve") / "toy"
    explore(["task=toy", "preset=smoke", f"out={out}", "budget.steps=120"])  # the shipped search defaults
    return out


@pytest.fixture
def client(run):
    return TestClient(create_app(name_runs([run])), base_url="http://127.0.0.1:8470")


def nodes_of(run):
    with TreeStore(run / "tree.db") as s:
        return s.nodes(s.search()["id"])


def test_runs_tree_and_node_panel(client, run):
    runs = client.get("/api/runs").json()["runs"]
    assert [r["id"] for r in runs] == ["toy"]
    r = runs[0]
    assert r["task"] == "toy" and r["status"] == "finished" and r["metric"] == "val/loss"
    assert r["best"]["val_score"] <= r["fixed"]["val_score"] and 0 < r["steps_used"] <= r["budget_steps"] == 120
    tree = client.get("/api/runs/toy/tree").json()
    nodes = nodes_of(run)
    assert tree["full"] and len(tree["nodes"]) == len(nodes) and tree["surface"][0]["name"] == "lr"
    assert tree["fixed_path"] == [n.id for n in T.fixed_path(nodes)] and tree["best_path"][-1] == r["best"]["node"]
    some = next(n for n in nodes if n.depth >= 2 and n.source == "model")  # a manager's child, deep in the tree
    d = client.get(f"/api/runs/toy/nodes/{some.id}").json()
    assert d["node"]["id"] == some.id and d["parent_recipe"] is not None
    assert {"train/loss", "val/loss"} <= set(d["curves"])  # curves along the path, from step 0
    assert min(s for s, _ in d["curves"]["val/loss"]) < some.start_step
    assert d["decision"]["source"] == "model" and d["decision"]["diagnosis"]
    assert d["observed"]["val_score"] == some.val_score and "improved" in d["observed"]


def test_incremental_fetch_sends_only_what_changed(run, tmp_path):
    run = shutil.copytree(run, tmp_path / "toy")  # the search resumes it to apply the command
    client = TestClient(create_app(name_runs([run])), base_url="http://127.0.0.1:8470")
    rev = client.get("/api/runs/toy/tree").json()["revision"]
    again = client.get(f"/api/runs/toy/tree?after={rev}").json()
    assert again["nodes"] == [] and again["revision"] == rev and "surface" not in again
    parent = T.fixed_path(nodes_of(run))[1]
    r = client.post(f"/api/runs/toy/nodes/{parent.id}/children", json={"recipe": {"dropout": 0.07}, "note": "n"})
    assert r.status_code == 202, r.text
    # the search applies the command (here by hand, as its loop does at the top of each iteration): its
    # coordinator verifies the child and creates it
    search = resume_run(run)
    try:
        effects = apply_commands(search.store, search.search_id, grow=search.person_child)
    finally:
        search.close()
    assert len(effects.children) == 1
    changed = client.get(f"/api/runs/toy/tree?after={rev}").json()
    assert [n["id"] for n in changed["nodes"]] == list(effects.children)
    assert changed["nodes"][0]["source"] == HUMAN and changed["nodes"][0]["status"] == "pending"
    assert changed["revision"] > rev
    cmds = client.get("/api/runs/toy/commands").json()["commands"]
    assert cmds[-1]["status"] == CommandStatus.APPLIED.value and cmds[-1]["child_id"] == effects.children[0]


def test_child_verdicts_422_with_reasons_or_202(client, run):
    parent = T.fixed_path(nodes_of(run))[1]
    url = f"/api/runs/toy/nodes/{parent.id}/children"
    r = client.post(url, json={"recipe": {"lr": 0.5, "dropout": 0.45}})
    assert r.status_code == 422
    body = r.json()
    assert any("lr" in x and "out_of_bounds" in x for x in body["reasons"])
    assert any("dropout" in x and "step_too_large" in x for x in body["reasons"])
    r = client.post(url, json={"recipe": {"momentum": 0.9}})
    assert r.status_code == 422 and "unknown_knob" in r.json()["detail"] and "momentum" in r.json()["detail"]
    r = client.post(url, json={"recipe": {"weight_decay": 0.05}})
    assert r.status_code == 202
    assert r.json()["recipe"] == {**parent.recipe, "weight_decay": 0.05}  # missing knobs keep the parent's value
    assert "resumed" in r.json()["message"]  # this run is finished: the child waits for a resume
    with TreeStore(run / "tree.db") as s:
        queued = s.commands(s.search()["id"], CommandStatus.QUEUED)
    assert queued[-1].kind is CommandKind.CHILD and queued[-1].payload["recipe"] == {"weight_decay": 0.05}


@pytest.mark.parametrize("method, path, kwargs, status, words", [
    ("get", "/api/runs/nope/tree", {}, 404, "no run"),
    ("get", "/api/runs/toy/nodes/999", {}, 404, "no node 999"),
    ("get", "/api/runs/toy/nodes/abc", {}, 404, "no node"),
    ("get", "/api/runs/toy/nodes/-1", {}, 404, "no node"),
    ("get", "/api/runs/toy/tree?after=soon", {}, 400, "revision number"),
    ("post", "/api/runs/toy/nodes/2/children", {"content": b"{recipe: ", "headers": {"content-type": "application/json"}},
     400, "malformed JSON"),
    ("post", "/api/runs/toy/nodes/2/children", {"json": [1, 2]}, 400, "JSON object"),
    ("post", "/api/runs/toy/nodes/2/children", {"json": {"recipe": {}, "seed": 3}}, 400, "unknown field"),
    ("post", "/api/runs/toy/nodes/2/children", {"json": {"recipe": "lr=1"}}, 400, "'recipe' must be an object"),
    ("post", "/api/runs/toy/nodes/2/children", {"json": {"recipe": {"lr": "fast"}}}, 422, "not a finite number"),
    ("post", "/api/runs/toy/nodes/2/children", {"content": b'{"recipe": {"lr": NaN}}',
                                                "headers": {"content-type": "application/json"}}, 422, "finite"),
    ("post", "/api/runs/toy/nodes/2/children", {"content": b'{"recipe": {}}', "headers": {"content-type": "text/plain"}},
     415, "application/json"),
    ("post", "/api/runs/toy/nodes/2/children", {"json": {"recipe": {}, "note": "x" * 70000}}, 413, "over the limit"),
    ("post", "/api/runs/toy/nodes/999/children", {"json": {"recipe": {}}}, 404, "no node 999"),
    ("post", "/api/runs/toy/nodes/999/close", {"json": {}}, 404, "no node 999"),
    ("post", "/api/runs/toy/pause", {"json": {}}, 409, "finished"),
    ("post", "/api/runs/toy/resume", {"json": {}}, 409, "finished"),
    ("delete", "/api/runs/toy", {}, 405, "not allowed"),
    ("get", "/api/nothing", {}, 404, "not found"),
])
def test_bad_requests_get_a_4xx_with_a_message(client, method, path, kwargs, status, words):
    r = getattr(client, method)(path, **kwargs)
    assert r.status_code == status, r.text
    assert words.lower() in r.json()["detail"].lower()


def test_a_horizon_node_cannot_have_children(client, run):
    leaf = next(n for n in nodes_of(run) if n.depth == 3 and n.status.name == "DONE")  # toy smoke: max_depth 3
    r = client.post(f"/api/runs/toy/nodes/{leaf.id}/children", json={"recipe": {"dropout": 0.1}})
    assert r.status_code == 409 and "horizon" in r.json()["detail"]


def test_streamed_body_over_the_limit_is_refused(run):
    client = TestClient(create_app(name_runs([run]), max_body_bytes=2048), base_url="http://127.0.0.1")

    def chunks():
        for _ in range(10):
            yield b" " * 1000

    r = client.post("/api/runs/toy/nodes/2/children", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_token_cors_host_and_headers(run):
    client = TestClient(create_app(name_runs([run]), token="t0ken", loopback=False), base_url="http://10.1.2.3:8470")
    assert client.get("/api/runs").status_code == 200  # reads need no token
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "t0ken"}):
        r = client.post("/api/runs/toy/nodes/2/close", json={}, headers=headers)
        assert r.status_code == 401 and "token" in r.json()["detail"]
    r = client.post("/api/runs/toy/nodes/2/close", json={}, headers={"Authorization": "Bearer t0ken"})
    assert r.status_code == 202
    # no CORS: another origin's page can neither read nor preflight a write
    r = client.get("/api/runs", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    r = client.options("/api/runs/toy/pause", headers={"Origin": "http://evil.example",
                                                        "Access-Control-Request-Method": "POST"})
    assert r.status_code >= 400 and "access-control-allow-origin" not in r.headers
    assert "default-src 'self'" in r.headers["content-security-policy"]
    # on loopback, a request naming another host (DNS rebinding) is refused
    local = TestClient(create_app(name_runs([run])), base_url="http://127.0.0.1:8470")
    assert local.get("/api/runs", headers={"Host": "evil.example"}).status_code == 400
    assert local.get("/api/runs", headers={"Host": "localhost:8470"}).status_code == 200


def test_page_and_static_files_are_served_from_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and '<script src="/static/app.js"' in page.text
    assert "http" not in page.text.replace("http://www.w3.org/2000/svg", "")  # no CDN
    for name in ("app.js", "chart.js", "style.css"):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and "cdn" not in r.text.lower()
    assert client.get("/api/runs/toy/schedule").headers["content-disposition"].startswith("attachment")
    assert json.loads(client.get("/api/runs/toy/schedule").text)["format"] == "searchmgr.schedule/1"


def test_the_llm_api_key_never_appears(tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCHMGR_SERVE_TEST_KEY", SECRET)
    out = tmp_path / "llm"
    with FakeOpenAI(default=cycling_toy_answers()) as srv:
        explore(["task=toy", "preset=smoke", f"out={out}", "budget.steps=100", "manager.name=openai",
                 f"manager.base_url={srv.base_url}", "manager.api_key_env=SEARCHMGR_SERVE_TEST_KEY"])
        assert any(SECRET in (r.get("authorization") or "") for r in srv.requests)  # the key was used
    client = TestClient(create_app(name_runs([out])), base_url="http://127.0.0.1")
    ids = [n["id"] for n in client.get("/api/runs/llm/tree").json()["nodes"]]
    paths = ["/", "/static/app.js", "/api/runs", "/api/runs/llm", "/api/runs/llm/tree", "/api/runs/llm/commands",
             "/api/runs/llm/schedule"] + [f"/api/runs/llm/nodes/{i}" for i in ids]
    for path in paths:
        r = client.get(path)
        assert r.status_code == 200 and SECRET not in r.text, path
    assert "SEARCHMGR_SERVE_TEST_KEY" in (out / "config.json").read_text()  # only the variable's name is stored


def test_token_rules_and_cli_errors(tmp_path, monkeypatch, capsys):
    from searchmgr.cli import main
    from searchmgr.serve.server import ServeSettings, resolve_token

    monkeypatch.delenv("SEARCHMGR_SERVE_TOKEN", raising=False)
    assert resolve_token(ServeSettings()) == (None, False)  # loopback: no token
    token, generated = resolve_token(ServeSettings(host="0.0.0.0"))
    assert generated and len(token) >= 24
    monkeypatch.setenv("SEARCHMGR_SERVE_TOKEN", "mine")
    assert resolve_token(ServeSettings(host="0.0.0.0")) == ("mine", False)
    assert resolve_token(ServeSettings()) == ("mine", False)  # a token set in the environment always applies
    assert main(["serve", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert main(["serve", str(tmp_path), "--port", "70000"]) == 2


def test_node_panel_shows_the_model_managers_evidence(tmp_path):
    out = tmp_path / "model"
    explore(["task=toy", "preset=smoke", f"out={out}", "budget.steps=200", "manager.name=model", "threads=1"])
    client = TestClient(create_app(name_runs([out])), base_url="http://127.0.0.1:8470")
    with TreeStore(out / "tree.db") as s:
        ranked = [n for n in s.nodes(s.search()["id"]) if n.source == "model"
                  and "GP over" in (s.decision(n.decision_id).parsed or {}).get("diagnosis", "")]
    assert ranked, "the smoke search made no model-ranked child"
    dec = client.get(f"/api/runs/model/nodes/{ranked[0].id}").json()["decision"]
    assert dec["evidence"].startswith("GP over") and "UCB rank 1 of" in dec["evidence"]
