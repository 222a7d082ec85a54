import pytest

from searchmgr.store.db import MIGRATIONS

from searchmgr.store import (
    CheckpointCorrupt, CorruptStore, NodeStatus, StoreError, TreeStore, load_checkpoint, save_checkpoint,
)


@pytest.fixture
def store(tmp_path):
    s = TreeStore(tmp_path / "tree.db")
    yield s
    s.close()


def test_migrations_are_recorded_once(tmp_path):
    TreeStore(tmp_path / "t.db").close()
    with TreeStore(tmp_path / "t.db") as s:
        assert [r["name"] for r in s.db["migrations"].rows] == [name for name, _ in MIGRATIONS]


def test_finished_nodes_never_change(store):
    sid = store.create_search("toy", {}, [], "fp", {})
    n = store.add_node(sid, None, 0, 0, 0, {"a": 1.0}, "root")
    store.start_node(n.id)
    store.finish_node(n.id, NodeStatus.DONE, val_score=1.0, test_score=None, utility=-1.0, steps_trained=0)
    with pytest.raises(StoreError, match="finished nodes never change"):
        store.set_status(n.id, NodeStatus.RUNNING)


def test_finish_is_atomic(store):
    sid = store.create_search("toy", {}, [], "fp", {})
    root = store.add_node(sid, None, 0, 0, 0, {"a": 1.0}, "root")
    child = store.add_node(sid, root.id, 1, 0, 10, {"a": 1.0}, "fixed")
    store.start_node(child.id)
    with pytest.raises(Exception):
        # a backup entry for a missing column value breaks mid-transaction: nothing may be written
        store.finish_node(child.id, NodeStatus.DONE, val_score=1.0, test_score=None, utility=-1.0,
                          steps_trained=10, backup={child.id: (1, -1.0), root.id: ("x", object())})
    assert store.node(child.id).status is NodeStatus.RUNNING
    assert store.node(child.id).val_score is None


def test_interrupt_running_and_retry_clears_partial_metrics(store):
    sid = store.create_search("toy", {}, [], "fp", {})
    root = store.add_node(sid, None, 0, 0, 0, {"a": 1.0}, "root")
    child = store.add_node(sid, root.id, 1, 0, 10, {"a": 1.0}, "fixed")
    store.start_node(child.id)
    store.add_metrics(child.id, 5, {"val/loss": 2.0}, 5)
    assert store.interrupt_running(sid) == [child.id]
    assert store.node(child.id).status is NodeStatus.INTERRUPTED
    store.start_node(child.id)
    assert store.metrics(child.id) == [] and store.node(child.id).status is NodeStatus.RUNNING


def test_decisions_round_trip(store):
    sid = store.create_search("toy", {}, [], "fp", {})
    did = store.add_decision(sid, 1, __import__("searchmgr.store", fromlist=["DecisionKind"]).DecisionKind.MANAGER,
                             "heuristic", verdict="rejected", reason="step_too_large: lr", context={"x": 1},
                             raw_response='{"a": 1}', parsed={"diagnosis": "d"}, latency_s=0.5)
    d = store.decision(did)
    assert d.context == {"x": 1} and d.parsed == {"diagnosis": "d"} and not d.applied and d.latency_s == 0.5


def test_checkpoint_sha_is_checked(tmp_path):
    path = tmp_path / "ck" / "n.pt"
    sha = save_checkpoint({"step": 3, "w": [1, 2]}, path)
    assert load_checkpoint(path, sha)["step"] == 3
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointCorrupt, match="corrupt"):
        load_checkpoint(path, sha)
    with pytest.raises(CheckpointCorrupt, match="missing"):
        load_checkpoint(tmp_path / "nope.pt", sha)
    assert not list((tmp_path / "ck").glob("*.tmp"))


def test_corrupt_database_is_named(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"garbage" * 200)
    with pytest.raises(CorruptStore, match="not a readable searchmgr store"):
        TreeStore(bad)
