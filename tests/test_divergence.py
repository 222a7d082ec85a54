"""A segment stops at its first non-finite evaluation of the objective and its node fails."""

import math

from searchmgr.rundir import open_run
from searchmgr.search import explore
from searchmgr.store import NodeStatus
from searchmgr.tasks.toy import ToyTask


def test_non_finite_objective_stops_the_segment_and_fails_the_node(tmp_path, monkeypatch):
    calls = {"segments": 0, "evals_after_nan": 0}
    original = ToyTask.train_segment

    def train_segment(self, checkpoint, recipe, segment, on_eval):
        calls["segments"] += 1
        poisoned = calls["segments"] == 4  # the first segment after the fixed path
        seen_nan = []

        def spy(step, metrics):
            if seen_nan:
                calls["evals_after_nan"] += 1
            if poisoned and not seen_nan:
                seen_nan.append(step)
                metrics = {**metrics, "val/loss": math.nan}
            return on_eval(step, metrics)

        return original(self, checkpoint, recipe, segment, spy)

    monkeypatch.setattr(ToyTask, "train_segment", train_segment)
    run = tmp_path / "run"
    # uct.fixed=first: the fixed path's three segments come first, so the fourth segment is the poisoned node 5
    explore(["task=toy", "preset=smoke", "width=16", "segment_steps=20", "eval_every=5", "budget.steps=100",
             'stopper.name="none"', "uct.fixed=first", f"out={run}"])
    with open_run(run) as store:
        nodes = store.nodes(store.search()["id"])
        bad = nodes[4]  # root, three fixed segments, then the poisoned one
        metrics = store.metrics(bad.id)
    assert bad.status is NodeStatus.FAILED and bad.error == f"diverged at step {bad.start_step + 5}: val/loss=nan"
    assert bad.steps_trained == 5 and calls["evals_after_nan"] == 0  # not one step more
    assert len(metrics) == 1 and math.isnan(metrics[0][1]["val/loss"])  # the evaluation is kept, NaN included
    assert all(n.status.finished for n in nodes) and len(nodes) > 5  # the search went on


def test_a_search_whose_segments_all_fail_before_a_step_ends(tmp_path, monkeypatch):
    """Failing segments spend no budget: the search stops after IDLE_FAILURES of them in a row, saying why."""
    from searchmgr.coordinator import IDLE_FAILURES

    calls = {"n": 0}
    original = ToyTask.train_segment

    def train_segment(self, checkpoint, recipe, segment, on_eval):
        calls["n"] += 1
        if calls["n"] > 1:  # the root trains; every segment after it breaks at once
            raise RuntimeError("the data loader is broken")
        return original(self, checkpoint, recipe, segment, on_eval)

    monkeypatch.setattr(ToyTask, "train_segment", train_segment)
    run = tmp_path / "run"
    outcome = explore(["task=toy", "preset=smoke", "budget.steps=200", f"out={run}"])
    assert "in a row failed before training a step" in outcome.stop_reason
    assert "the data loader is broken" in outcome.stop_reason
    with open_run(run) as store:
        nodes = store.nodes(store.search()["id"])
    failed = [n for n in nodes if n.status is NodeStatus.FAILED]
    assert len(failed) == IDLE_FAILURES and calls["n"] == IDLE_FAILURES + 1
