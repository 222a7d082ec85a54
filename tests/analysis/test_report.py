"""`searchmgr report` / `analyze` on a finished toy run: the files exist and the figures show what they claim."""

from __future__ import annotations

import json

import matplotlib.image as mpimg
import numpy as np
import pytest

from searchmgr.analysis import load_run
from searchmgr.analysis.classify import Label
from searchmgr.analysis.plots import tree_layout
from searchmgr.analysis.report import write_analyze, write_report
from searchmgr.analysis.trajectories import curve, step_function
from searchmgr.cli import main
from searchmgr.store import NodeStatus


@pytest.fixture(scope="module")
def report(toy_run, tmp_path_factory):
    rep = write_report(toy_run, tmp_path_factory.mktemp("report"), keep_figures=True)
    yield rep
    import matplotlib.pyplot as plt

    plt.close("all")


def by_gid(fig, gid):
    return [a for ax in fig.axes for a in [*ax.lines, *ax.collections, *ax.images] if a.get_gid() == gid]


def test_files(report):
    names = {p.name for p in report.folder.iterdir()}
    assert {"report.md", "report.html", "summary.json", "tree.png", "curves.png", "knobs.png"} <= names
    for name in ("tree", "curves", "knobs"):
        img = mpimg.imread(report.folder / f"{name}.png")
        assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 500
        assert np.std(img[..., :3]) > 0.05  # not a blank canvas
    page = report.html.read_text()
    assert page.count("src='data:image/png;base64,") == 3 and "src='tree.png'" not in page  # self-contained


def test_tree_figure(report, toy_run):
    run = load_run(toy_run)
    fig = report.figures["tree"]
    trained = [n for n in run.nodes if n.depth > 0]
    drawn = {status: len(c.get_offsets()) for status in NodeStatus for c in by_gid(fig, f"nodes-{status.value}")}
    assert sum(drawn.values()) == len(trained)
    for status in NodeStatus:
        assert drawn.get(status, 0) == sum(n.status is status for n in trained)
    assert drawn.get(NodeStatus.PRUNED, 0) > 0  # the smoke search prunes: the markers are there
    done = by_gid(fig, "nodes-done")[0]
    assert np.allclose(done.get_array(), [n.val_score for n in trained if n.status is NodeStatus.DONE])
    assert len(by_gid(fig, "root")[0].get_offsets()) == 1
    (edges,) = by_gid(fig, "edges")
    assert len(edges.get_segments()) == len(trained)
    pos = tree_layout(run.nodes)
    for gid, path in (("best-path", run.best_path()), ("fixed-path", run.fixed_path())):
        (line,) = by_gid(fig, gid)
        assert list(line.get_xdata()) == [n.depth for n in path]
        assert list(line.get_ydata()) == [pos[n.id][1] for n in path]
    assert len(run.fixed_path()) == run.max_depth + 1
    assert len(fig.axes) == 2  # the tree and its colour bar


def test_curves_figure(report, toy_run):
    run = load_run(toy_run)
    fig = report.figures["curves"]
    best, fixed = run.best_path(), run.fixed_path()
    for name, path in (("best", best), ("fixed", fixed)):
        for key in ("val/loss", "train/loss"):
            (line,) = by_gid(fig, f"{name} {key}")
            c = curve(run, path, key)
            assert list(line.get_xdata()) == list(c.steps) and list(line.get_ydata()) == list(c.values)
        (val,) = by_gid(fig, f"{name} val/loss")
        assert val.get_xdata()[-1] == path[-1].end_step and val.get_ydata()[-1] == path[-1].val_score
    assert len(fig.axes) == 2 and fig.axes[0].get_xlim() == fig.axes[1].get_xlim()  # one step axis


def test_knobs_figure_and_classification(report, toy_run):
    run = load_run(toy_run)
    fig = report.figures["knobs"]
    assert [ax.get_ylabel() for ax in fig.axes] == ["lr", "dropout", "weight_decay"]
    assert fig.axes[0].get_yscale() == "log" and fig.axes[1].get_yscale() == "linear"
    paths = run.top_paths(5)
    best = by_gid(fig, "best")
    assert len(best) == 3 and len(by_gid(fig, "top-k")) == 3 * (len(paths) - 1)
    for ax, line in zip(fig.axes, best):
        xs, ys = step_function(run.best_path(), ax.get_ylabel())
        assert list(line.get_xdata()) == xs and list(line.get_ydata()) == ys
    an = report.analysis
    assert [r.knob for r in an.knobs] == ["lr", "dropout", "weight_decay"]
    for r in an.knobs:
        assert r.best.values == tuple(n.recipe[r.knob] for n in run.best_path()[1:])
        assert r.best.label in Label and 1 <= r.agreement <= r.k == len(paths)
        title = fig.axes[[k.name for k in run.knobs].index(r.knob)].get_title(loc="left")
        assert title.startswith(r.knob) and r.best.label.value in title and f"{r.agreement}/{r.k}" in title


def test_markdown_and_summary(report, toy_run):
    run = load_run(toy_run)
    md = report.markdown.read_text()
    best = run.best_leaf()
    fixed = run.fixed_path()[-1]
    assert f"{best.val_score:.4g}" in md and f"{best.test_score:.4g}" in md and f"{fixed.val_score:.4g}" in md
    for name in ("tree.png", "curves.png", "knobs.png"):
        assert f"]({name})" in md
    assert report.analysis.verdict.value.upper() in md
    for n in run.best_path()[1:]:  # every decision along the best path, with its diagnosis
        assert run.decisions[n.id]["diagnosis"].replace("|", "\\|") in md
    s = json.loads((report.folder / "summary.json").read_text())
    assert s["summary"]["best_val"] == best.val_score and s["summary"]["fixed_val"] == fixed.val_score
    assert s["summary"]["segments"] == len(run.nodes) - 1
    assert s["summary"]["pruned"] == sum(n.status is NodeStatus.PRUNED for n in run.nodes)
    assert s["summary"]["steps_used"] == sum(n.steps_trained for n in run.nodes)
    assert s["analysis"]["verdict"] == report.analysis.verdict.value


def test_cli_report_and_analyze(toy_run, tmp_path, capsys):
    assert main(["report", str(toy_run), "-o", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert f"report written to {tmp_path / 'r'}" in out and (tmp_path / "r" / "report.html").exists()
    assert main(["analyze", str(toy_run), str(toy_run), "-o", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "analysis written to" in out and (tmp_path / "a" / "analyze.png").exists()
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_analyze_figure(toy_run, tmp_path):
    res = write_analyze([toy_run, toy_run], tmp_path, keep_figures=True)
    (img,) = by_gid(res.figure, "labels")
    assert img.get_array().shape == (2, 3)  # runs x knobs
    labels = list(Label)
    assert [labels[int(c)] for c in img.get_array()[0]] == [r.best.label for r in res.rows[0][1].knobs]
    (bars,) = [c for c in res.figure.axes[1].containers]
    assert len(bars) == 2
    rows = [line for line in res.markdown.read_text().splitlines() if line.startswith("| toy")]
    assert len(rows) == 2
    data = json.loads((tmp_path / "analyze.json").read_text())
    assert [d["analysis"]["verdict"] for d in data] == [an.verdict.value for _, an in res.rows]


def test_a_fixed_recipe_that_stopped_early_is_named_with_its_step(report, toy_run):
    """The fixed recipe's score is compared at the step where its path stopped: the report says which step."""
    import dataclasses

    run = load_run(toy_run)
    s = report.summary
    fixed = run.fixed_path()[-1]
    md = report.markdown.read_text()
    horizon = run.max_depth * run.config["segment_steps"]
    stopped = f"at step {fixed.end_step} of {horizon}"
    assert (stopped in md) == (fixed.depth != run.max_depth)
    short = dataclasses.replace(s, extra={**s.extra, "fixed_depth": 1, "fixed_step": 8, "horizon": 32, "max_depth": 4})
    assert short.fixed_where == "at step 8 of 32"
    assert dataclasses.replace(s, extra={**s.extra, "fixed_depth": 4, "max_depth": 4}).fixed_where == ""
