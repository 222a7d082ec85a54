"""Figures of a run (matplotlib, Agg). Every function returns the Figure it drew.

Artists carry ``gid`` tags so tests and callers can find what was drawn:
``nodes-<status>`` / ``root`` (node markers), ``edges``, ``best-path``,
``fixed-path`` (tree); ``best <key>`` / ``fixed <key>`` (curves); ``best``,
``fixed``, ``top-k`` (knob step functions); ``labels``, ``improvement`` (analyze).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.colors import ListedColormap, Normalize  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.markers import MarkerStyle  # noqa: E402
from matplotlib.path import Path  # noqa: E402

from searchmgr import tree as T  # noqa: E402
from searchmgr.analysis.classify import Analysis, Label, Verdict  # noqa: E402
from searchmgr.analysis.gains import improvement  # noqa: E402
from searchmgr.analysis.run import RunData  # noqa: E402
from searchmgr.analysis.trajectories import curve, segments, step_function, telemetry_keys, train_key  # noqa: E402
from searchmgr.store import Node, NodeStatus  # noqa: E402
from searchmgr.surface import Scale  # noqa: E402
from searchmgr.tasks import Direction, Family  # noqa: E402

BEST = "tab:orange"
FIXED = "tab:blue"
LABEL_COLOURS = {Label.INCREASING: "#2ca02c", Label.DECREASING: "#9467bd", Label.OSCILLATING: "#ff7f0e",
                 Label.CONSTANT: "#d9d9d9"}
VERDICT_COLOURS = {Verdict.SUPPORTS: "#2ca02c", Verdict.CONTRADICTS: "#d62728", Verdict.INCONCLUSIVE: "#bdbdbd"}


def tree_layout(nodes: Sequence[Node]) -> dict[int, tuple[float, float]]:
    """``node id -> (depth, y)``: leaves in depth-first order get consecutive rows, parents sit at their children's mean."""
    pos: dict[int, tuple[float, float]] = {}
    next_row = [0.0]

    def place(n: Node) -> float:
        kids = sorted(T.children(nodes, n.id), key=lambda c: c.id)
        if not kids:
            y = next_row[0]
            next_row[0] += 1.0
        else:
            y = sum(place(c) for c in kids) / len(kids)
        pos[n.id] = (float(n.depth), y)
        return y

    place(T.root(nodes))
    return pos


@dataclass(frozen=True)
class Ring:
    """How a status is drawn: the marker's edge (and its fill when the status has no score)."""

    colour: str
    width: float
    style: str = "solid"
    fill: str = "#bdbdbd"


# the page's colours (serve/static/style.css): pruned purple (never the best path's orange), failed red
RINGS = {NodeStatus.DONE: Ring("black", 0.6), NodeStatus.PRUNED: Ring("#8e24aa", 2.0),
         NodeStatus.FAILED: Ring("#b00020", 2.0), NodeStatus.RUNNING: Ring("#0a66ff", 2.0, fill="white"),
         NodeStatus.PENDING: Ring("#777777", 1.2, "--", "white"), NodeStatus.INTERRUPTED: Ring("#777777", 1.2, ":")}
SCORED = (NodeStatus.DONE, NodeStatus.PRUNED)
HUMAN = "human"


def _marker_path(marker: str) -> Path:
    m = MarkerStyle(marker)
    return m.get_path().transformed(m.get_transform())


def _status_counts(nodes: Sequence[Node]) -> list[tuple[NodeStatus, str]]:
    counts = Counter(n.status for n in nodes if n.depth > 0)
    return [(st, f"{st.value} ({counts[st]})") for st in NodeStatus if counts[st]]


def _cmap(run: RunData) -> str:
    return "viridis_r" if run.objective.direction is Direction.MINIMIZE else "viridis"


def plot_tree(run: RunData) -> Figure:
    """The search tree by depth, coloured by validation score; pruned/failed marked; best and fixed paths drawn."""
    nodes = list(run.nodes)
    pos = tree_layout(nodes)
    rows = max(y for _, y in pos.values()) + 1
    depth = max([run.max_depth] + [n.depth for n in nodes])  # a supervised run's chain may be deeper
    fig, ax = plt.subplots(figsize=(max(6.0, 2.0 + 1.6 * depth), max(4.0, 0.32 * rows + 2.0)),
                           layout="constrained")
    # edges
    segs = [[pos[n.parent_id], pos[n.id]] for n in nodes if n.parent_id is not None]
    ax.add_collection(LineCollection(segs, colors="#bbbbbb", linewidths=0.8, zorder=1, gid="edges"))
    # highlighted paths: the best path as a broad band, the fixed path dashed on top (both stay visible where shared)
    for path, colour, style, lw, alpha, z, gid, label in (
            (run.best_path(), BEST, "-", 6.0, 0.55, 2.0, "best-path", "best path"),
            (run.fixed_path(), FIXED, "--", 2.0, 0.9, 2.5, "fixed-path", "fixed recipe")):
        if len(path) > 1:
            xs, ys = zip(*(pos[n.id] for n in path))
            ax.plot(xs, ys, style, color=colour, lw=lw, alpha=alpha, zorder=z, gid=gid, label=label)
    # nodes: the fill is the score, the ring the status, the shape who made it (as on the page)
    # colour scale from finished segments (a pruned segment's score is partial; it is clipped to this range)
    finite = [n for n in nodes if n.val_score is not None and math.isfinite(n.val_score) and n.depth > 0]
    done_scores = [n.val_score for n in finite if n.status is NodeStatus.DONE]
    scores = done_scores if len(set(done_scores)) > 1 else [n.val_score for n in finite]
    norm = Normalize(min(scores), max(scores)) if scores else Normalize(0, 1)
    mappable = None
    for status in NodeStatus:
        group = [n for n in nodes if n.status is status and n.depth > 0]
        if not group:
            continue
        ring = RINGS[status]
        kw: dict = dict(s=70, edgecolors=ring.colour, linewidths=ring.width, linestyle=ring.style, zorder=3,
                        gid=f"nodes-{status.value}", label=f"{status.value} ({len(group)})")
        if status in SCORED:
            kw.update(c=[n.val_score if n.val_score is not None else math.nan for n in group], cmap=_cmap(run),
                      norm=norm, plotnonfinite=True)
        else:
            kw.update(facecolors=ring.fill)
        sc = ax.scatter([pos[n.id][0] for n in group], [pos[n.id][1] for n in group], **kw)
        sc.set_paths([_marker_path("s" if n.source == HUMAN else "o") for n in group])
        if status is NodeStatus.DONE:
            mappable = sc
    r = T.root(nodes)
    ax.scatter([pos[r.id][0]], [pos[r.id][1]], marker="D", s=60, color="#cccccc", edgecolors="#333333", zorder=3,
               gid="root")
    for n in nodes:  # labels on a white ground: an edge never strikes through one
        x, y = pos[n.id]
        text = str(n.id) if n.val_score is None else f"{n.id}: {n.val_score:.4g}"
        ax.annotate(text, (x, y), xytext=(6, 3), textcoords="offset points", fontsize=6, color="#444444", zorder=4,
                    bbox=dict(boxstyle="square,pad=0.05", fc="white", ec="none", alpha=0.85))
    if mappable is not None:
        outside = any(not norm.vmin <= n.val_score <= norm.vmax for n in finite)
        cb = fig.colorbar(mappable, ax=ax, pad=0.01, extend="both" if outside else "neither")
        better = "lower" if run.objective.direction is Direction.MINIMIZE else "higher"
        cb.set_label(f"{run.objective.metric} (brighter = better, {better})")
    ax.set_xlabel("depth (segment)")
    ax.set_xticks(range(depth + 1))
    ax.set_yticks([])
    ax.set_xlim(-0.3, depth + 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_title(f"{run.name}: search tree, {len(nodes) - 1} segments")
    handles, _ = ax.get_legend_handles_labels()
    handles = [h for h in handles if h.get_gid() not in {f"nodes-{s.value}" for s in NodeStatus}]
    handles += [Line2D([], [], ls="", marker="o", ms=7, mfc=RINGS[st].fill, mec=RINGS[st].colour,
                       mew=RINGS[st].width, label=lab) for st, lab in _status_counts(nodes)]
    handles += [Line2D([], [], ls="", marker=m, ms=7, mfc="#cccccc", mec="#333333", label=lab)
                for m, lab in (("o", "search"), ("s", "human"), ("D", "root"))]
    fig.legend(handles=handles, loc="outside lower center", ncol=6, fontsize=7, frameon=False)
    return fig


def plot_curves(run: RunData) -> Figure:
    """Validation (top) and training (bottom) curves along the best path and the fixed path, on one step axis."""
    keys = [run.objective.metric] + [k for k in [train_key(run)] if k]
    fig, axes = plt.subplots(len(keys), 1, figsize=(8, 2.6 * len(keys) + 0.6), sharex=True, squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        for path, colour, name in ((run.fixed_path(), FIXED, "fixed"), (run.best_path(), BEST, "best")):
            c = curve(run, path, key)
            if c.steps:
                ax.plot(c.steps, c.values, color=colour, marker="o", ms=3, lw=1.8,
                        ls="--" if name == "fixed" else "-", label=f"{name} {key}", gid=f"{name} {key}")
        for n in segments(run.best_path()):
            ax.axvline(n.end_step, color="#dddddd", lw=0.8, zorder=0)
        ax.set_ylabel(key)
        if ax.lines:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no finished segment yet", ha="center", va="center", transform=ax.transAxes)
    same = [n.id for n in run.best_path()] == [n.id for n in run.fixed_path()]
    axes[0, 0].set_title(f"{run.name}: best path vs fixed recipe (segment ends as grey lines)"
                         + ("\nthe best path is the fixed recipe: the curves coincide" if same else ""))
    axes[-1, 0].set_xlabel("training step")
    fig.tight_layout()
    return fig


def plot_knobs(run: RunData, analysis: Analysis, k: int = 5) -> Figure:
    """Each knob along the best path as a step function, the other top-k paths faint behind, the fixed path dashed."""
    paths = run.top_paths(k)
    fixed = run.fixed_path()
    knobs = list(run.knobs)
    fig, axes = plt.subplots(len(knobs), 1, figsize=(8, 1.9 * len(knobs) + 0.8), sharex=True, squeeze=False)
    results = {r.knob: r for r in analysis.knobs}
    for ax, kn in zip(axes[:, 0], knobs):
        for i, p in enumerate(paths[1:]):
            xs, ys = step_function(p, kn.name)
            ax.step(xs, ys, where="post", color="#888888", alpha=0.35, lw=1.2, gid="top-k",
                    label=f"top-{len(paths)} others" if i == 0 else None)
        xs, ys = step_function(fixed, kn.name)
        if xs:
            ax.step(xs, ys, where="post", color=FIXED, ls="--", lw=1.2, gid="fixed", label="fixed")
        if paths:
            xs, ys = step_function(paths[0], kn.name)
            ax.step(xs, ys, where="post", color=BEST, lw=2.5, gid="best", label="best path")
        if kn.scale is Scale.LOG:
            ax.set_yscale("log")
        r = results.get(kn.name)
        title = f"{kn.name} ({kn.role.value})"
        if r is not None:
            title += f": {r.best.label.value} on the best path, {r.agreement}/{r.k} of top-{r.k} agree"
        ax.set_title(title, fontsize=9, loc="left")
        ax.set_ylabel(kn.name)
    if axes[0, 0].get_legend_handles_labels()[0]:
        axes[0, 0].legend(fontsize=7, loc="best")
    axes[-1, 0].set_xlabel("training step")
    fig.suptitle(f"{run.name}: knobs along the best path", fontsize=10)
    fig.tight_layout()
    return fig


def plot_analyze(rows: Sequence[tuple[RunData, Analysis]]) -> Figure:
    """Across runs: each knob's best-path label (reversals inside), the verdict, and the gain over the fixed recipe."""
    names: list[str] = []
    for run, _ in rows:
        for kn in run.knobs:
            if kn.name not in names:
                names.append(kn.name)
    codes = {lab: i for i, lab in enumerate(Label)}
    n_runs = len(rows)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(5 + 1.9 * len(names), 2.6 + 0.6 * n_runs),
                                 gridspec_kw={"width_ratios": [len(names) + 1.5, 3]}, layout="constrained")
    colours = [LABEL_COLOURS[lab] for lab in Label] + ["#ffffff"]
    grid = [[len(Label)] * len(names) for _ in rows]
    for i, (run, an) in enumerate(rows):
        res = {r.knob: r for r in an.knobs}
        for j, name in enumerate(names):
            r = res.get(name)
            if r is None:
                continue
            grid[i][j] = codes[r.best.label]
            ax.text(j, i, f"{r.best.label.short}\nR={r.best.reversals} {r.agreement}/{r.k}", ha="center",
                    va="center", fontsize=7)
    ax.imshow(grid, cmap=ListedColormap(colours), vmin=-0.5, vmax=len(colours) - 0.5, aspect="auto", gid="labels")
    for i, (run, an) in enumerate(rows):
        applied = run.family is Family.SUPERVISED
        ax.text(len(names) + 0.3, i, verdict_text(run, an), va="center", fontsize=8,
                bbox=dict(facecolor=VERDICT_COLOURS[an.verdict] if applied else "#ffffff", alpha=0.6, edgecolor="none"))
    roles = {kn.name: kn.role.value for run, _ in rows for kn in run.knobs}
    ax.set_xticks(range(len(names)), [f"{n}\n({roles[n]})" for n in names], fontsize=7)
    ax.set_yticks(range(n_runs), [run.label for run, _ in rows], fontsize=8)
    ax.set_xlim(-0.5, len(names) + 1.6)
    ax.set_title("best-path label per knob (R = reversals, agreement of top-k); verdict", fontsize=9)
    handles = [Line2D([], [], marker="s", ls="", color=LABEL_COLOURS[lab], label=lab.value) for lab in Label]
    fig.legend(handles=handles, fontsize=7, loc="outside lower center", ncol=4, frameon=False)
    gains = [improvement(run) for run, _ in rows]
    bars = bx.barh(range(n_runs), [100 * (g or 0.0) for g in gains], color="#4c72b0", gid="improvement")
    for b, g in zip(bars, gains):
        bx.text(b.get_width(), b.get_y() + b.get_height() / 2,
                "n/a" if g is None else f" {100 * abs(g):.1f}% {'better' if g > 0 else 'worse' if g < 0 else 'equal'}",
                va="center", fontsize=7)
    bx.axvline(0, color="black", lw=0.8)
    bx.set_yticks(range(n_runs), [""] * n_runs)
    bx.set_ylim(n_runs - 0.5, -0.5)
    bx.set_xlabel("best over fixed, validation\n(% of |fixed|, right = better)")
    return fig


def verdict_text(run: RunData, an: Analysis) -> str:
    """The capacity-versus-regularization verdict, which only supervised runs are read by."""
    return an.verdict.value if run.family is Family.SUPERVISED else f"not applied ({run.family.value})"


def plot_telemetry(run: RunData) -> Figure | None:
    """An RL or GRPO run's own telemetry (returns, success, rewards, KL, entropy ...) along the best path and the
    fixed recipe, one panel per metric; ``None`` when the run recorded none of it."""
    keys = telemetry_keys(run)
    if not keys:
        return None
    cols = 2 if len(keys) > 1 else 1
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.0 * cols, 2.3 * rows + 0.8), sharex=True, squeeze=False,
                             layout="constrained")
    for ax, key in zip(axes.flat, keys):
        for path, colour, name in ((run.fixed_path(), FIXED, "fixed"), (run.best_path(), BEST, "best")):
            c = curve(run, path, key)
            if c.steps:
                ax.plot(c.steps, c.values, color=colour, marker="o", ms=2.5, lw=1.5, ls="--" if name == "fixed" else "-",
                        label=name, gid=f"{name} {key}")
        for n in segments(run.best_path()):
            ax.axvline(n.end_step, color="#dddddd", lw=0.8, zorder=0)
        ax.set_title(key, fontsize=9, loc="left")
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    for c in range(cols):  # the lowest panel of each column carries the step axis
        ax = [a for a in axes[:, c] if a.get_visible()][-1]
        ax.xaxis.set_tick_params(labelbottom=True)
        ax.set_xlabel("training step")
    axes[0, 0].legend(fontsize=7)
    same = [n.id for n in run.best_path()] == [n.id for n in run.fixed_path()]
    fig.suptitle(f"{run.name}: {run.family.value} telemetry, best path (orange) vs fixed recipe (blue, dashed)"
                 + ("\nthe best path is the fixed recipe: the curves coincide" if same else ""), fontsize=10)
    return fig
