"""Smaller rails of issue 30: endpoint URLs, partial exports, the service's upgrades, the progress line's best."""

import pytest

from searchmgr.config import ConfigError, build_config
from searchmgr.progress import Reporter
from searchmgr.rundir import RunLock
from searchmgr.schedule import ScheduleError, export_schedule
from searchmgr.search import explore
from searchmgr.serve.server import ServeError, check_runs
from searchmgr.store import TreeStore


def test_base_url_must_be_http():
    with pytest.raises(ConfigError, match="not an http"):
        build_config({"task": "toy", "manager": {"base_url": "ftp://example.org/v1"}})
    assert build_config({"task": "toy", "manager": {"base_url": "https://example.org/v1"}}).manager.base_url


def test_export_refuses_a_run_without_a_complete_schedule(tmp_path):
    run = tmp_path / "run"
    explore(["task=toy", "preset=smoke", f"out={run}", "budget.nodes=2"])  # two segments: no schedule reaches step 60
    with pytest.raises(ScheduleError, match="no complete schedule yet .*step [24]0 of 60"):
        export_schedule(run)


def test_progress_best_is_the_best_complete_schedule_and_only_improves(tmp_path):
    seen = []

    class Bests(Reporter):
        def node_finished(self, node, best, budget_used, nodes_done):
            seen.append(best)

    explore(["task=toy", "preset=smoke", f"out={tmp_path / 'run'}", "budget.steps=240"], reporter=Bests())
    shown = [b for b in seen if b is not None]
    assert seen[0] is None and shown  # nothing before the first complete schedule
    assert all(b <= a for a, b in zip(shown, shown[1:]))  # a loss: the best only goes down


def test_serve_upgrades_an_old_store_only_as_its_owner(tmp_path):
    run = tmp_path / "run"
    explore(["task=toy", "preset=smoke", f"out={run}", "budget.steps=60"])
    with TreeStore(run / "tree.db") as s:  # as a store from before the run-state migration
        s.db.execute("DELETE FROM migrations WHERE name = '0005_run_state'")
        for column in ("state", "state_reason", "state_at"):
            s.db.execute(f"ALTER TABLE searches DROP COLUMN {column}")
    lock = RunLock.acquire(run)  # an (older) owner still running it
    try:
        with pytest.raises(ServeError, match="in use by"):
            check_runs([run])
    finally:
        lock.release()
    check_runs([run])  # now the service upgrades it, holding the lock meanwhile
    with TreeStore.read_only(run / "tree.db") as s:
        assert "0005_run_state" in s.migrations()


def test_a_damaged_root_leaves_its_intact_descendants_expandable(tmp_path):
    run = tmp_path / "run"
    explore(["task=toy", "preset=smoke", f"out={run}", "budget.steps=120"])
    root = run / "checkpoints" / "node_00001.pt"
    data = bytearray(root.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: the root fails its sha256
    root.write_bytes(bytes(data))
    with TreeStore.read_only(run / "tree.db") as s:
        before = {n.id for n in s.nodes(s.search()["id"])}
    outcome = explore(["budget.steps=240"], resume=run)
    assert "tree exhausted" not in outcome.stop_reason  # was: "tree exhausted", nothing trained
    with TreeStore.read_only(run / "tree.db") as s:
        nodes = s.nodes(s.search()["id"])
    trained = [n for n in nodes if n.id not in before and n.status.name == "DONE"]
    assert trained and all(n.parent_id != 1 for n in trained)  # grown below the root's intact children


def test_the_surface_fingerprint_covers_constraints_not_wording(toy_surface):
    import dataclasses

    from searchmgr.surface import Constraint, ConstraintKind

    cap = Constraint(ConstraintKind.SUM_AT_MOST, ("dropout", "weight_decay"), 0.6, "regularization budget")
    with_cap = dataclasses.replace(toy_surface, constraints=(cap,))
    reworded = dataclasses.replace(
        with_cap, knobs=tuple(dataclasses.replace(k, effect=k.effect + " (reworded)") for k in with_cap.knobs),
        constraints=(dataclasses.replace(cap, why="another reason"),))
    tighter = dataclasses.replace(with_cap, constraints=(dataclasses.replace(cap, value=0.4),))
    assert reworded.fingerprint() == with_cap.fingerprint()  # words do not change what recipes mean
    assert tighter.fingerprint() != with_cap.fingerprint() != toy_surface.fingerprint()
    assert not tighter.same_as(with_cap.fingerprint())
    assert "constraints" in tighter.difference(with_cap.describe()) and "0.4" in tighter.difference(with_cap.describe())
    wider = dataclasses.replace(toy_surface, knobs=(dataclasses.replace(toy_surface.knobs[0], high=1.0),
                                                    *toy_surface.knobs[1:]))
    assert "lr.range" in wider.difference(toy_surface.describe())
    assert toy_surface.same_as(toy_surface.legacy_fingerprint())  # runs stored before keep resuming


def test_a_checkpoint_is_hashed_again_only_once_it_changed(tmp_path, monkeypatch):
    from searchmgr.store import digests

    monkeypatch.setenv("SEARCHMGR_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "ckpt.pt"
    path.write_bytes(b"a" * 1000)
    first = digests.file_sha256(path)
    monkeypatch.setattr(digests, "_MEMORY", {})  # a new process: only the on-disk cache remembers
    reads = []
    real = type(path).read_bytes
    monkeypatch.setattr(type(path), "read_bytes", lambda self: reads.append(self) or real(self))
    assert digests.file_sha256(path) == first and reads == []  # unchanged: not read again
    path.write_bytes(b"b" * 1000)  # same size, new contents (and modification time)
    assert digests.file_sha256(path) != first and reads == [path]


def test_node_roles_follow_the_stored_sources(tmp_path):
    from searchmgr import tree as T
    from searchmgr.commands import HUMAN
    from searchmgr.policies.uct import FINISH, HOLD, START

    assert T.role_of(_node("root")) is T.NodeRole.ROOT and T.role_of(_node("fixed")) is T.NodeRole.FIXED
    assert T.role_of(_node(START)) is T.NodeRole.START and T.role_of(_node(HUMAN)) is T.NodeRole.HUMAN
    assert T.role_of(_node(HOLD)) is T.role_of(_node(FINISH)) is T.NodeRole.HOLD
    assert T.role_of(_node("heuristic (fallback)")) is T.NodeRole.PROPOSED
    assert T.role_of(_node("random"), baseline=True) is T.NodeRole.BASELINE


def _node(source):
    from searchmgr.store import Node, NodeStatus

    return Node(1, 1, None, 0, 0, 0, {}, NodeStatus.DONE, source, None, None, None, 0, 0.0, 0, None, None, None,
                None, None, 0.0, None)


def test_an_endpoint_outage_stops_the_search_without_closing_the_parent(tmp_path):
    from fake_openai_server import FakeOpenAI

    run = tmp_path / "run"
    with FakeOpenAI(default=lambda body: {"status": 503}) as srv:  # the manager and its fallback: both down
        outcome = explore(["task=toy", "preset=smoke", f"out={run}", "budget.steps=240", "manager.name=openai",
                           "manager.fallback=openai", f"manager.base_url={srv.base_url}", "manager.max_retries=0",
                           "manager.backoff_s=0", "manager.timeout_s=5"])
    assert outcome.stopped and "no manager answered" in outcome.stop_reason
    with TreeStore.read_only(run / "tree.db") as s:
        sid = s.search()["id"]
        assert s.closed(sid) == frozenset()  # was: the parent closed for good
        assert s.run_state(sid)[0].value == "stopped"


def test_a_search_that_completes_no_alternative_schedule_says_so(tmp_path):
    said = []

    class Say(Reporter):
        def message(self, text):
            said.append(text)

    explore(["task=toy", "preset=smoke", f"out={tmp_path / 'run'}", "budget.steps=60", "uct.fixed=first"],
            reporter=Say())  # the fixed path alone
    assert any("no schedule but the fixed recipe's reached the horizon" in line for line in said)
    said.clear()
    explore(["task=toy", "preset=smoke", f"out={tmp_path / 'more'}", "budget.steps=240"], reporter=Say())
    assert not any("no schedule but the fixed" in line for line in said)
    explore(["task=toy", "preset=smoke", f"out={tmp_path / 'short'}", "budget.nodes=2"], reporter=Say())
    assert any(line.startswith("no schedule reached the horizon") for line in said)  # not even the fixed recipe's
