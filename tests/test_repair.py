"""Damaged checkpoints: `repair`, resume and the live loop take them out of the search; show and export say so."""

import json

from searchmgr import tree as T
from searchmgr.cli import main
from searchmgr.rundir import claim_run, open_run
from searchmgr.search import explore, resume_run
from searchmgr.store import NodeStatus

SMOKE = ["task=toy", "preset=smoke", "width=16", "segment_steps=10", "eval_every=5"]


def make_run(tmp_path, steps=60):
    run = tmp_path / "run"
    explore(SMOKE + [f"budget.steps={steps}", f"out={run}"])
    return run


def pending_child_of_damaged(run, damage):
    """The state the old bug left: a pending child inserted before its parent's checkpoint failed to load."""
    with claim_run(run) as r:
        sid = r.store.search()["id"]
        parent = T.fixed_path(r.store.nodes(sid))[1]
        child = r.store.add_node(sid, parent.id, parent.depth + 1, parent.end_step, parent.end_step + 10,
                                 {**parent.recipe, "dropout": 0.3}, "heuristic")
    path = run / parent.checkpoint
    path.unlink() if damage == "missing" else path.write_bytes(b"not a checkpoint")
    return parent, child


def nodes(run):
    with open_run(run) as store:
        sid = store.search()["id"]
        return {n.id: n for n in store.nodes(sid)}, store.events(sid)


def test_repair_command_then_resume_goes_on(tmp_path, capsys):
    run = make_run(tmp_path)
    parent, child = pending_child_of_damaged(run, "corrupt")
    assert main(["show", str(run)]) == 0
    shown = capsys.readouterr().out
    assert "damaged checkpoints: 1" in shown and "fails its sha256" in shown and "searchmgr repair" in shown
    assert main(["export", str(run), "-o", str(tmp_path / "s.json")]) == 0
    assert "warning" in capsys.readouterr().out
    assert json.loads((tmp_path / "s.json").read_text())["provenance"]["damage"]

    assert main(["repair", str(run)]) == 0
    assert "1 damaged checkpoint(s) taken out" in capsys.readouterr().out
    after, events = nodes(run)
    assert after[parent.id].checkpoint is None and after[parent.id].status is NodeStatus.DONE
    assert after[child.id].status is NodeStatus.FAILED and "cannot be trained from" in after[child.id].error
    assert [e["node_id"] for e in events if e["kind"] == "checkpoint_damaged"] == [parent.id]

    explore(["budget.steps=120"], resume=run)  # was: CheckpointCorrupt at the same node on every resume
    final, _ = nodes(run)
    assert all(n.status.finished for n in final.values())
    below = {n.id for n in final.values() if n.parent_id == parent.id}
    assert below == {c.id for c in after.values() if c.parent_id == parent.id}  # nothing new below it
    assert main(["show", str(run)]) == 0
    assert "(repaired: no longer a parent)" in capsys.readouterr().out
    assert main(["repair", str(run)]) == 0 and "nothing to repair" in capsys.readouterr().out


def test_resume_repairs_a_missing_checkpoint_itself(tmp_path):
    run = make_run(tmp_path)
    parent, child = pending_child_of_damaged(run, "missing")
    explore(["budget.steps=100"], resume=run)
    final, events = nodes(run)
    assert final[child.id].status is NodeStatus.FAILED and final[parent.id].checkpoint is None
    assert any(e["kind"] == "checkpoint_damaged" and "is missing" in e["message"] for e in events)


def test_a_checkpoint_damaged_while_the_search_runs_fails_only_its_children(tmp_path):
    run = make_run(tmp_path)
    with claim_run(run) as r:
        sid = r.store.search()["id"]
        parent = next(n for n in r.store.nodes(sid) if n.depth == 2 and n.checkpoint)  # a node mid-schedule
        child = r.store.add_node(sid, parent.id, parent.depth + 1, parent.end_step, parent.end_step + 10,
                                 {**parent.recipe, "dropout": 0.3}, "heuristic")
    search = resume_run(run, {"budget": {"steps": 100}})  # intact at resume: nothing repaired yet
    try:
        (run / parent.checkpoint).write_bytes(b"flipped bits")
        search.run()
    finally:
        search.close()
    final, events = nodes(run)
    assert final[child.id].status is NodeStatus.FAILED and final[parent.id].checkpoint is None
    assert sum(n.steps_trained for n in final.values()) > 60  # the search went on after it
