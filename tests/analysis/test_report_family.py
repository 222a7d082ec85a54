"""Reports read right for every family: gains in the objective's sign, titles with the run's name, RL and GRPO
telemetry instead of a train/val gap, a flagged validation/test disagreement, the page's shapes in tree.png."""

from __future__ import annotations

import json

import matplotlib.colors as mcolors
import pytest

from searchmgr.analysis import load_run
from searchmgr.analysis.gains import change_text, val_test_agreement
from searchmgr.analysis.plots import BEST, RINGS, plot_tree
from searchmgr.analysis.report import write_report
from searchmgr.serve.synthetic import showcase_run
from searchmgr.store import NodeStatus
from searchmgr.tasks import Direction, Objective

RETURN = Objective("val/return", Direction.MAXIMIZE, "test/return")
LOSS = Objective("val/loss", Direction.MINIMIZE, "test/loss")


def test_change_text_follows_the_objectives_sign():
    assert change_text(-149, -320, RETURN) == "171 higher, better (53.44% of |fixed|)"
    assert change_text(-650, -320, RETURN) == "330 lower, worse (103.1% of |fixed|)"
    assert change_text(0.3, 0.62, LOSS) == "0.32 lower, better (51.61% of |fixed|)"
    assert change_text(0.7, 0.62, LOSS, "parent") == "0.08 higher, worse (12.9% of |parent|)"
    assert change_text(0.5, 0.0, RETURN) == "0.5 higher, better" and change_text(1, 1, RETURN) == "equal to fixed"
    assert change_text(None, 1.0, RETURN) == "-"


def test_a_selection_that_test_does_not_bear_out_is_flagged():
    # the PPO schedule of the issue: selected at -149 on validation, -650 on test
    bad = val_test_agreement(-149, -650, -320, -300, RETURN)
    assert not bad.ok and "disagree" in bad.text and "select.reevaluate" in bad.text
    assert not val_test_agreement(-149, -650, None, None, RETURN).ok  # no fixed recipe: the gap alone
    assert val_test_agreement(-149, -160, -320, -330, RETURN).ok
    assert val_test_agreement(0.40, 0.405, 0.41, 0.412, LOSS).ok  # a small gain halved on test is noise
    assert val_test_agreement(0.30, None, 0.4, 0.4, LOSS) is None


def test_supervised_report_keeps_its_sections_and_names_the_run(toy_run, tmp_path):
    rep = write_report(toy_run, tmp_path / "r", keep_figures=True)
    md = rep.markdown.read_text()
    name = load_run(toy_run).name
    for fig in rep.figures.values():
        title = fig.get_suptitle() or fig.axes[0].get_title()
        assert title.startswith(name + ":") and str(toy_run.parent) not in title
    assert "val−train gap" in md and "Verdict on" in md and "telemetry" not in md.lower()
    assert "% of \\|fixed\\|" in md or "equal to fixed" in md


def test_rl_report_shows_its_telemetry_not_a_gap(rl_run, tmp_path):
    rep = write_report(rl_run, tmp_path / "r", keep_figures=True)
    md = rep.markdown.read_text()
    assert "## RL telemetry" in md and "telemetry.png" in md and (tmp_path / "r" / "telemetry.png").exists()
    assert "val−train gap" not in md and "Verdict on" not in md and "not applied to this rl run" in md
    fig = rep.figures["telemetry"]
    drawn = {line.get_gid() for ax in fig.axes for line in ax.lines}
    assert {"best rl/return", "fixed rl/return", "best rl/entropy", "best rl/approx_kl"} <= drawn
    assert fig.get_suptitle().startswith(load_run(rl_run).name + ": rl telemetry")
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["family"] == "rl" and summary["summary"]["gain_text"]


def test_tree_figure_shapes_and_rings_match_the_page(tmp_path):
    run = load_run(showcase_run(tmp_path / "showcase"))
    fig = plot_tree(run)
    ax = fig.axes[0]
    for status in NodeStatus:
        (coll,) = [c for c in ax.collections if c.get_gid() == f"nodes-{status.value}"]
        nodes = [n for n in run.nodes if n.status is status and n.depth > 0]
        squares = [len(p.vertices) == 5 for p in coll.get_paths()]  # a square's path: 4 corners and the close
        assert squares == [n.source == "human" for n in nodes], status
        assert mcolors.same_color(coll.get_edgecolors()[0], RINGS[status].colour)
    assert not mcolors.same_color(RINGS[NodeStatus.PRUNED].colour, BEST)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"human", "root", "interrupted (1)", "pruned (2)"} <= set(labels)


def test_analyze_does_not_apply_the_supervised_verdict_to_rl(rl_run, toy_run, tmp_path):
    from searchmgr.analysis.report import write_analyze

    md = write_analyze([toy_run, rl_run], tmp_path / "a").markdown.read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ")][1:]  # after the header
    assert rows[1].endswith("| not applied (rl) |") and "not applied" not in rows[0]
