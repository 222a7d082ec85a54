"""searchmgr.Run: a run read once, read-only — what `searchmgr show` prints, as Python values."""

import pytest

import searchmgr
from searchmgr import tree as T
from searchmgr.rundir import RunNotFound
from searchmgr.schedule import export_schedule
from searchmgr.search import explore
from searchmgr.store import DecisionKind, NodeStatus


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "toy"
    explore(["task=toy", "preset=smoke", "threads=1", f"out={out}"])
    return out


def test_run_reads_what_show_prints(run_dir):
    run = searchmgr.Run(run_dir)
    assert run.task == "toy" and run.objective.metric == "val/loss" and run.config.max_depth == 3
    assert run.nodes[0].is_root and [n.id for n in run.nodes] == sorted(n.id for n in run.nodes)
    assert run.steps_used == run.config.budget.steps == 240
    # the best complete schedule: a root-to-leaf path ending at the best-scored finished leaf
    assert run.best is not None and run.best.depth == run.config.max_depth
    assert [n.id for n in run.best_path] == [n.id for n in T.path_to(list(run.nodes), run.best.id)]
    assert all(n.status is NodeStatus.DONE for n in run.best_path[1:])
    done = [n for n in run.nodes if n.depth == 3 and n.status is NodeStatus.DONE]
    assert run.best.val_score == min(n.val_score for n in done)
    assert [n.source for n in run.fixed_path[1:]] == ["fixed"] * 3 and run.fixed is run.fixed_path[-1]
    assert run.state.status.value == "finished" and run.wall_s > 0
    # the export of the same run names the same leaf
    assert export_schedule(run_dir).provenance["leaf_node"] == run.best.id


def test_decisions_and_disk(run_dir):
    run = searchmgr.Run(run_dir)
    made = {n.decision_id for n in run.nodes if n.decision_id}
    assert made <= {d.id for d in run.decisions()}
    assert all(d.kind is DecisionKind.MANAGER for d in run.decisions(kind=DecisionKind.MANAGER))
    disk = run.disk()
    kept = [n for n in run.nodes if n.checkpoint]
    assert disk.kept == len(kept) > 0 and disk.bytes == sum((run_dir / n.checkpoint).stat().st_size for n in kept)
    assert disk.keep == "expandable" and disk.damaged == ()
    (run_dir / kept[-1].checkpoint).write_bytes(b"damaged")
    assert len(run.disk().damaged) == 1


def test_a_directory_without_a_run_is_a_user_error(tmp_path):
    with pytest.raises(RunNotFound) as e:
        searchmgr.Run(tmp_path)
    assert isinstance(e.value, searchmgr.UserError) and "not a run directory" in str(e.value)
