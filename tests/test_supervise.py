"""``searchmgr supervise``: one live run, decisions asked asynchronously and applied at safe boundaries."""

import itertools
import json
import threading

import pytest
from fake_openai_server import FakeOpenAI, decision

from searchmgr import tree as T
from searchmgr.cli import main
from searchmgr.config import ConfigError
from searchmgr.replay import replay
from searchmgr.schedule import export_schedule
from searchmgr.search import explore
from searchmgr.store import DecisionKind, NodeStatus, TreeStore
from searchmgr.supervise import supervise
from searchmgr.tasks import make_task

TOY = ["task=toy", "preset=smoke"]  # horizon 3 x 20 steps, a boundary every 10


def load(run):
    with TreeStore(run / "tree.db") as s:
        sid = s.search()["id"]
        return s.nodes(sid), [d for d in s.decisions(sid, kind=DecisionKind.MANAGER) if d.source != T.FIXED]


def chain_of(nodes):
    return [n for n in nodes if n.source not in (T.ROOT, T.FIXED)]


def check_chain(nodes, horizon):
    """Root first; each segment starts where its parent ended and is its parent's only supervised child."""
    chain = chain_of(nodes)
    index = T.by_id(nodes)
    assert chain[0].source == T.SUPERVISED and chain[0].parent_id == T.root(nodes).id and chain[0].start_step == 0
    for parent, child in zip(chain, chain[1:]):
        assert child.parent_id == parent.id and child.depth == parent.depth + 1
        assert child.start_step == parent.end_step == index[child.parent_id].end_step
        assert child.decision_id is not None
    assert chain[-1].end_step == horizon and all(n.status is NodeStatus.DONE for n in chain)
    assert all(n.checkpoint for n in chain[:-1]) and chain[-1].checkpoint is None  # no parent beyond the horizon
    return chain


@pytest.fixture(scope="module")
def heuristic_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("sup") / "run"
    outcome = supervise(["task=toy", "interval=25", f"out={run}"])  # horizon 4 x 100 steps; overfits by step 50
    return run, outcome


def test_heuristic_run_is_a_chain_split_where_decisions_were_applied(heuristic_run):
    run, outcome = heuristic_run
    nodes, decisions = load(run)
    chain = check_chain(nodes, 400)
    assert len(chain) >= 2, "the heuristic changed nothing on an overfitting toy run"
    assert outcome.final.id == chain[-1].id and outcome.applied == len(chain) - 1
    applied = [d for d in decisions if d.applied]
    assert [d.child_id for d in applied] == [n.id for n in chain[1:]]
    for d, child in zip(applied, chain[1:]):
        # an offline manager answers at once: the snapshot's boundary is where it applies
        assert d.applied_step == d.snapshot_step == child.start_step
        assert d.recipe_version == child.depth - 2 and d.node_id == child.parent_id
        assert d.snapshot_step % 25 == 0 and d.verdict == "accepted" and d.latency_s is None
    # every request is traced with its snapshot and version; none was lost
    assert all(d.snapshot_step is not None and d.recipe_version is not None for d in decisions)
    assert sorted({d.snapshot_step for d in decisions}) == list(range(25, 400, 25))
    # every recipe trained is admissible from its parent's (bounds, step limits)
    surface = make_task("toy", {}).surface
    for parent, child in zip(chain, chain[1:]):
        assert surface.check(child.recipe) == child.recipe
        assert all(k.step_ok(parent.recipe[k.name], child.recipe[k.name]) for k in surface.knobs)


def test_show_export_report_replay_read_a_supervised_run(heuristic_run, tmp_path, capsys):
    run, outcome = heuristic_run
    chain = chain_of(load(run)[0])
    assert main(["show", str(run)]) == 0
    shown = capsys.readouterr().out
    assert f"best path: {' -> '.join(str(i) for i in [1] + [n.id for n in chain])}" in shown
    assert main(["show", str(run), "--decisions"]) == 0
    traces = capsys.readouterr().out
    assert "snapshot at step 25" in traces and "applied at step" in traces
    schedule = export_schedule(run)
    assert [(s.start_step, s.end_step, s.recipe) for s in schedule.segments] == \
        [(n.start_step, n.end_step, n.recipe) for n in chain]
    assert main(["export", str(run), "-o", str(tmp_path / "s.json")]) == 0
    assert main(["report", str(run), "-o", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "report.html").exists()
    # retraining the exported schedule from scratch reproduces the supervised run exactly (toy, CPU, same seed)
    result = replay(tmp_path / "s.json")
    assert result.val == pytest.approx(outcome.final.val_score, rel=1e-6)
    # the service shows the chain as the best path, with the decision that made each segment
    from fastapi.testclient import TestClient

    from searchmgr.serve.app import create_app
    from searchmgr.serve.runs import name_runs

    client = TestClient(create_app(name_runs([run])), base_url="http://127.0.0.1:8470")
    served = client.get("/api/runs").json()["runs"][0]
    tree = client.get(f"/api/runs/{served['id']}/tree").json()
    assert tree["best_path"] == [1] + [n.id for n in chain] and len(tree["nodes"]) == len(chain) + 1
    panel = client.get(f"/api/runs/{served['id']}/nodes/{chain[1].id}").json()
    assert panel["decision"]["source"] == "model" and panel["decision"]["diagnosis"]  # the default manager


def test_chunked_live_run_trains_like_the_fixed_path(tmp_path):
    """interval=0 never asks: the chain is one segment under the base recipe, trained boundary by boundary;
    the baseline trains the same recipe segment by segment, as a search does. Both must end identical."""
    run = tmp_path / "run"
    outcome = supervise([*TOY, "interval=0", "baseline=true", f"out={run}"])
    nodes, decisions = load(run)
    chain = check_chain(nodes, 60)
    fixed = T.fixed_path(nodes)
    assert len(chain) == 1 and decisions == [] and [n.depth for n in fixed] == [0, 1, 2, 3]
    assert chain[0].val_score == fixed[-1].val_score and outcome.fixed.id == fixed[-1].id
    search = explore([*TOY, "budget.steps=60", "uct.fixed=first", f"out={tmp_path / 'search'}"])
    assert search.fixed.val_score == fixed[-1].val_score


def slow_toy(*words):
    return [*TOY, "step_delay_s=0.01", "segment_steps=40", "manager.name=openai", "manager.max_retries=0",
            "manager.timeout_s=30", *words]  # horizon 120 steps, a boundary every 10 (about 0.1 s each)


LR_DOWN = decision([{"knob": "lr", "op": "scale", "value": 0.8}], "slow answer")
DROPOUT_UP = decision([{"knob": "dropout", "op": "add", "value": 0.05}], "fast answer")
HOLD = decision([], "nothing to change")


def test_answers_arrive_while_training_goes_on_and_stale_ones_are_dropped(tmp_path):
    """The request at step 10 is answered only after a third request came in, the one at step 20 at once: the
    fast answer is applied first (a third request is only sent once a pending one was collected), so the slow
    one comes back for a recipe that no longer exists (stale by version) and changes nothing."""
    run = tmp_path / "run"
    third = threading.Event()
    calls = itertools.count()

    def answer(body):
        n = next(calls)
        if n == 0:
            third.wait(60)
            return LR_DOWN
        if n == 1:
            return DROPOUT_UP
        third.set()
        return HOLD

    with FakeOpenAI(default=answer) as srv:
        supervise(slow_toy("interval=10", "stale_steps=1000", "in_flight=2", f"manager.base_url={srv.base_url}",
                           f"out={run}"))
    nodes, decisions = load(run)
    chain = check_chain(nodes, 120)
    by_step = {d.snapshot_step: d for d in decisions}
    fast, slow = by_step[20], by_step[10]
    assert fast.verdict == "accepted" and fast.applied and fast.applied_step > fast.snapshot_step
    assert chain[1].decision_id == fast.id and chain[1].recipe["dropout"] == pytest.approx(0.05)
    assert chain[1].start_step == fast.applied_step and chain[0].end_step == fast.applied_step
    # training went on while the request was pending: the first segment has evaluations past the snapshot
    with TreeStore(run / "tree.db") as s:
        assert max(step for step, _ in s.metrics(chain[0].id)) == fast.applied_step > 20
    assert slow.verdict == "stale" and not slow.applied and "version 0 -> 1" in slow.reason
    assert slow.latency_s > fast.latency_s and slow.recipe_version == 0 and slow.applied_step is None
    assert all(n.recipe["lr"] == chain[0].recipe["lr"] for n in chain)  # the stale answer changed nothing
    assert all(d.recipe_version is not None for d in decisions)


def test_answers_older_than_stale_steps_are_dropped(tmp_path):
    run = tmp_path / "run"
    with FakeOpenAI(default=lambda body: DROPOUT_UP, delay=0.5) as srv:
        outcome = supervise(slow_toy("interval=30", "stale_steps=10", "in_flight=1",
                                     f"manager.base_url={srv.base_url}", f"out={run}"))
    nodes, decisions = load(run)
    assert len(chain_of(nodes)) == 1 and outcome.applied == 0
    assert decisions and all(d.verdict == "stale" for d in decisions)
    assert any("limit stale_steps=10" in d.reason for d in decisions)


def test_invalid_answers_and_endpoint_errors_are_traced_no_ops(tmp_path):
    run = tmp_path / "run"
    bad = decision([{"knob": "momentum", "op": "scale", "value": 1.1}])
    with FakeOpenAI(["not json", bad, {"status": 500}], default=lambda body: {"status": 500}) as srv:
        outcome = supervise(slow_toy("interval=40", "manager.attempts=2", f"manager.base_url={srv.base_url}",
                                     f"out={run}"))
    nodes, decisions = load(run)
    assert len(chain_of(nodes)) == 1 and outcome.applied == 0
    verdicts = [(d.snapshot_step, d.attempt, d.verdict) for d in decisions]
    assert verdicts[:3] == [(40, 0, "rejected"), (40, 1, "rejected"), (80, 0, "error")]
    assert "unknown_knob" in decisions[1].reason


def test_resume_retrains_the_interrupted_segment(tmp_path, monkeypatch):
    run = tmp_path / "run"
    cls = type(make_task("toy", {}))
    original = cls.train_segment
    calls = {"n": 0}

    def dies(self, checkpoint, recipe, segment, on_eval):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # the process is stopped in the middle of the run
        return original(self, checkpoint, recipe, segment, on_eval)

    monkeypatch.setattr(cls, "train_segment", dies)
    with pytest.raises(KeyboardInterrupt):
        supervise(["task=toy", "interval=25", f"out={run}"])  # dies in the chunk 100-125, after splits at 50, 75
    before, _ = load(run)
    assert any(n.status is NodeStatus.INTERRUPTED for n in before)
    assert sum(n.status is NodeStatus.DONE and n.depth > 0 for n in before) >= 1
    monkeypatch.setattr(cls, "train_segment", original)
    with pytest.raises(ConfigError, match="may change manager"):
        supervise(["seed=3"], resume=run)
    explore([*TOY, "budget.steps=60", f"out={tmp_path / 'search'}"])
    with pytest.raises(ConfigError, match="not a supervised run"):
        supervise([], resume=tmp_path / "search")
    with pytest.raises(ConfigError, match="is a supervised run; continue it with `searchmgr supervise --resume"):
        explore([], resume=run)
    supervise(["in_flight=1"], resume=run)
    nodes, decisions = load(run)
    chain = check_chain(nodes, 400)
    done_before = {n.id: n for n in before if n.status is NodeStatus.DONE}
    for n in chain:
        if n.id in done_before:
            assert n.finished_at == done_before[n.id].finished_at  # finished segments were not retrained
    assert len(chain) >= 2


def test_bad_settings_fail_before_training(tmp_path):
    with pytest.raises(ConfigError, match="without budget"):
        supervise([*TOY, "budget.steps=100", f"out={tmp_path / 'a'}"])
    with pytest.raises(ConfigError, match="interval"):
        supervise([*TOY, "interval=-1", f"out={tmp_path / 'b'}"])
    assert not (tmp_path / "a").exists()


def test_cli_supervise(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["supervise", *TOY, "interval=20", f"out={run}"]) == 0
    out = capsys.readouterr().out
    assert "supervised run: trained to the horizon" in out and str(run) in out
    assert main(["supervise", *TOY, "interval=x", f"out={tmp_path / 'x'}"]) == 2
    assert "interval" in capsys.readouterr().err
    json.loads((run / "config.json").read_text())
