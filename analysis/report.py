"""A run's report: Markdown with PNG figures, the same as one self-contained HTML file, and a JSON summary.

:func:`write_report` is the Python twin of ``searchmgr report RUN``; :func:`write_analyze`
of ``searchmgr analyze RUN [RUN ...]``. The document is built once as a list of
blocks (heading, paragraph, table, figure) and rendered twice, so the Markdown and
the HTML always say the same thing.
"""

from __future__ import annotations

import base64
import html
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from matplotlib.figure import Figure

import matplotlib.pyplot as plt

from searchmgr.analysis import plots
from searchmgr.analysis.classify import TOL, Analysis, analyse_run
from searchmgr.analysis.gains import change_text, improvement, val_test_agreement
from searchmgr.analysis.run import RunData, load_run
from searchmgr.analysis.trajectories import telemetry_keys, train_key
from searchmgr.sanitize import md_escape
from searchmgr.store import NodeStatus
from searchmgr.tasks import Family

# -- document blocks ---------------------------------------------------------


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Image:
    file: str  # relative to the report folder
    caption: str


Block = Heading | Para | Table | Image


def to_markdown(blocks: Sequence[Block]) -> str:
    """Every text literal (:func:`md_escape`): text from LLMs or stored runs can carry neither markup nor HTML."""
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out += ["#" * b.level + " " + md_escape(b.text), ""]
        elif isinstance(b, Para):
            out += [md_escape(b.text), ""]
        elif isinstance(b, Table):
            out.append("| " + " | ".join(md_escape(str(h)) for h in b.header) + " |")
            out.append("|" + "---|" * len(b.header))
            out += ["| " + " | ".join(md_escape(str(c)) for c in row) + " |" for row in b.rows]
            out.append("")
        elif isinstance(b, Image):
            out += [f"![{md_escape(b.caption)}]({b.file})", "", f"*{md_escape(b.caption)}*", ""]
    return "\n".join(out)


CSS = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
       "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #ccc;padding:4px 8px;"
       "vertical-align:top;text-align:left}th{background:#f3f3f3}img{max-width:100%}figcaption{color:#555;"
       "font-style:italic}code{background:#f3f3f3}")


def to_html(blocks: Sequence[Block], folder: Path, title: str) -> str:
    """One self-contained page: figures inlined as base64 PNG."""
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{CSS}</style></head><body>"]
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            out.append(f"<p>{html.escape(b.text)}</p>")
        elif isinstance(b, Table):
            out.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in b.header) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in b.rows]
            out.append("</table>")
        elif isinstance(b, Image):
            data = base64.b64encode((folder / b.file).read_bytes()).decode()
            out.append(f"<figure><img alt='{html.escape(b.caption)}' src='data:image/png;base64,{data}'>"
                       f"<figcaption>{html.escape(b.caption)}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out)


# -- formatting ----------------------------------------------------------------


def fmt(v: float | None, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{digits}g}"


def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:+.1f}%"


def _updates(parsed: dict | None) -> str:
    ups = [u for u in (parsed or {}).get("updates") or [] if u.get("op") != "hold"]
    if not ups:
        return "hold all"
    return ", ".join(f"{u['knob']} {'x' if u['op'] == 'scale' else '+'}{u['value']:.3g}" for u in ups)


# -- one run ---------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """The numbers of the summary table (also written to summary.json)."""

    metric: str
    direction: str
    best_node: int | None
    best_val: float | None
    best_test: float | None
    fixed_val: float | None
    fixed_test: float | None
    gain: float | None  # of the best over the fixed recipe on validation, a share of |fixed| (positive = better)
    gain_text: str  # the same written for the objective's sign: "171 higher, better (53.44% of |fixed|)"
    val_test_ok: bool | None  # whether test bears out the selection (None: no test score)
    val_test_text: str | None
    steps_used: int
    budget_steps: int | None
    segments: int
    done: int
    pruned: int
    failed: int
    accepted: int
    rejected: int
    manager_errors: int
    stopper_prunes: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fixed_where(self) -> str:
        """Where the fixed recipe's score was taken, when its path stopped before the horizon ("" when complete)."""
        depth, top = self.extra.get("fixed_depth"), self.extra.get("max_depth")
        if not depth or depth == top:
            return ""
        return f"at step {self.extra['fixed_step']} of {self.extra['horizon']}"


def summarize(run: RunData) -> Summary:
    best = run.best_leaf()
    fixed = run.fixed_path()[-1]
    trained = [n for n in run.nodes if n.depth > 0]
    fixed_val, fixed_test = (fixed.val_score, fixed.test_score) if fixed.depth else (None, None)
    agree = val_test_agreement(best.val_score, best.test_score, fixed_val, fixed_test, run.objective) if best else None
    return Summary(
        metric=run.objective.metric, direction=run.objective.direction.value,
        best_node=best.id if best else None, best_val=best.val_score if best else None,
        best_test=best.test_score if best else None,
        fixed_val=fixed.val_score if fixed.depth else None, fixed_test=fixed.test_score if fixed.depth else None,
        gain=improvement(run), gain_text=change_text(best.val_score if best else None, fixed_val, run.objective),
        val_test_ok=None if agree is None else agree.ok, val_test_text=None if agree is None else agree.text,
        steps_used=run.steps_used(),
        budget_steps=(run.config.get("budget") or {}).get("steps"), segments=len(trained),
        done=sum(n.status is NodeStatus.DONE for n in trained),
        pruned=sum(n.status is NodeStatus.PRUNED for n in trained),
        failed=sum(n.status is NodeStatus.FAILED for n in trained),
        accepted=run.counts.accepted, rejected=run.counts.rejected, manager_errors=run.counts.errors,
        stopper_prunes=run.counts.stopper_stops,
        extra={"fixed_depth": fixed.depth, "fixed_step": fixed.end_step,
               "horizon": run.max_depth * int(run.config.get("segment_steps") or 0),
               "manager": (run.config.get("manager") or {}).get("name"),
               "seed": run.seed, "max_depth": run.max_depth, "segment_steps": run.config.get("segment_steps"),
               "family": run.family.value})


def _summary_table(run: RunData, s: Summary) -> Table:
    rows = [
        ("run state", run.state or "-"),
        (f"best {s.metric} (node {s.best_node})", fmt(s.best_val)), ("its test score", fmt(s.best_test)),
        (f"fixed recipe {s.metric} (depth {s.extra['fixed_depth']})",
         fmt(s.fixed_val) + (f" ({s.fixed_where}, where its path stopped)" if s.fixed_where else "")),
        ("fixed recipe test score", fmt(s.fixed_test)),
        ("best against fixed (validation)",
         s.gain_text + (f" (against the fixed recipe {s.fixed_where})" if s.fixed_where else "")),
        ("validation against test", s.val_test_text or "no test score"),
        ("steps spent / budget", f"{s.steps_used} / {s.budget_steps}"),
        ("segments trained (nodes expanded)", str(s.segments)),
        ("done / pruned / failed", f"{s.done} / {s.pruned} / {s.failed}"),
        ("proposals accepted / rejected / manager errors", f"{s.accepted} / {s.rejected} / {s.manager_errors}"),
        ("segments pruned by the stopper", str(s.stopper_prunes)),
        ("manager, seed", f"{s.extra['manager']}, {s.extra['seed']}"),
        ("schedule", f"{s.extra['max_depth']} segments x {s.extra['segment_steps']} steps"),
    ]
    rows += [(str(k), str(v)) for k, v in run.info.items()]
    return Table(("quantity", "value"), tuple(rows))


def classification_table(an: Analysis) -> Table:
    rows = []
    for r in an.knobs:
        t = r.best
        dist = ", ".join(f"{k}: {v}" for k, v in sorted(r.distribution.items()))
        rows.append((r.knob, r.role.value, " → ".join(f"{v:.3g}" for v in t.values), t.label.value,
                     pct(t.net_rel) if t.net_rel is not None else "from 0", f"{t.net_range:+.3f}", str(t.reversals),
                     f"{t.amplitude:.3f}", f"{r.agreement}/{r.k}", dist,
                     "yes" if r.evidence else "no", {True: "conforms", False: "contradicts", None: "-"}[r.conforms]))
    return Table(("knob", "role", "best-path values", "label", "net rel. change", "net change (range units)",
                  "reversals", "amplitude (range units)", "top-k agree", "top-k labels", "evidence", "vs hypothesis"),
                 tuple(rows))


def _gap(metrics: dict[str, float], metric: str, tkey: str | None) -> float | None:
    """Validation minus training metric at an evaluation (the generalisation gap for losses)."""
    if tkey is None or tkey not in metrics or metric not in metrics:
        return None
    return metrics[metric] - metrics[tkey]


def _telemetry_change(run: RunData, parent_id: int, node_id: int, keys: Sequence[str]) -> str:
    """``"rl/entropy 1.2 → 0.9; rl/approx_kl 0.01 → 0.02"``: the telemetry at the end of the parent and of the node."""
    def last(nid: int) -> dict[str, float]:
        ms = run.metrics.get(nid, [])
        return ms[-1][1] if ms else {}

    before, after = last(parent_id), last(node_id)
    return "; ".join(f"{k} {fmt(before.get(k), 3)} → {fmt(after[k], 3)}" for k in keys if k in after)


def _observed(run: RunData, parent, n, tkey: str | None) -> str:
    """What a segment of the best path did: the objective against its parent, then the val−train gap
    (supervised) or the family's own telemetry (RL, GRPO)."""
    metric = run.objective.metric
    obs = f"{metric} {fmt(parent.val_score)} → {fmt(n.val_score)}"
    if parent.val_score is not None and n.val_score is not None:
        obs += f" ({change_text(n.val_score, parent.val_score, run.objective, 'parent')})"
    if run.family is not Family.SUPERVISED:
        extra = _telemetry_change(run, parent.id, n.id, telemetry_keys(run, limit=3))
        return obs + (f"; {extra}" if extra else "")
    last = run.metrics.get(n.id, [])
    gap_after = _gap(last[-1][1] if last else {}, metric, tkey)
    if gap_after is not None:
        prev = run.metrics.get(parent.id, [])
        gap_before = _gap(prev[-1][1], metric, tkey) if prev else None
        obs += f"; val−train gap {fmt(gap_before, 3)} → {gap_after:.3g}"
    return obs


def decisions_table(run: RunData) -> Table:
    """Per segment of the best path: the decision that created it and what happened."""
    fixed_by_depth = {n.depth: n for n in run.fixed_path()}
    tkey = train_key(run)
    rows = []
    path = run.best_path()
    for parent, n in zip(path, path[1:]):
        d = run.decisions.get(n.id) or {}
        f = fixed_by_depth.get(n.depth)
        rows.append((str(n.depth), str(n.id), f"{n.start_step}–{n.end_step}", n.source,
                     " ".join(f"{k}={v:.3g}" for k, v in n.recipe.items()), d.get("diagnosis", "-"), _updates(d),
                     d.get("expected_outcome", "-"), _observed(run, parent, n, tkey),
                     fmt(f.val_score) if f is not None else "-"))
    return Table(("depth", "node", "steps", "source", "recipe", "diagnosis", "updates", "expected", "observed",
                  "fixed at this depth"), tuple(rows))


RULES = (f"Labels (tolerance {TOL:g} of each knob's range on its own scale, log knobs judged on log values): "
         "constant when the path spans at most the tolerance; monotone when it never moves back by more than the "
         "tolerance from its running extreme (zigzag filter, 0 reversals); oscillating with one or more reversals. "
         "A capacity or regularization knob counts as evidence when its label is not constant, the path has at "
         "least 3 segments and at least half of the top-k paths share its label. The run supports \"capacity "
         "accumulates, regularization oscillates\" when some part is supported (all evidence conforms) and none is "
         "contradicted or mixed; contradicts it when some part is contradicted (no evidence conforms) and none is "
         "supported or mixed; otherwise it is inconclusive. Full rules: searchmgr.analysis.classify.")


@dataclass(frozen=True)
class Report:
    folder: Path
    markdown: Path
    html: Path
    summary: Summary
    analysis: Analysis
    figures: dict[str, Figure]  # kept open only when keep_figures=True


def write_report(run_dir: str | Path, out: str | Path | None = None, k: int = 5,
                 keep_figures: bool = False) -> Report:
    """Write ``report.md``, ``report.html``, ``summary.json`` and the figures of one run; return where."""
    run = load_run(run_dir)
    folder = Path(out) if out is not None else run.run_dir / "report"
    folder.mkdir(parents=True, exist_ok=True)
    an = analyse_run(run, k)
    s = summarize(run)
    figs = {"tree": plots.plot_tree(run), "curves": plots.plot_curves(run), "knobs": plots.plot_knobs(run, an, k)}
    telemetry = plots.plot_telemetry(run) if run.family is not Family.SUPERVISED else None
    if telemetry is not None:
        figs["telemetry"] = telemetry
    files = {}
    for name, fig in figs.items():
        fig.savefig(folder / f"{name}.png", dpi=110)
        files[name] = f"{name}.png"
        if not keep_figures:
            plt.close(fig)
    title = f"searchmgr report: {run.name}"
    blocks: list[Block] = [
        Heading(title, 1),
        Para(f"Task {run.task} ({run.family.value}), run directory {run.run_dir}."),
        Para(f"Objective: {run.objective.metric} ({run.objective.direction.value}); the test score "
             f"({run.objective.test_metric}) rides along for reporting only."),
        *([Para("Warning: " + s.val_test_text)] if s.val_test_ok is False else []),
        Heading("Summary"), _summary_table(run, s),
        *_selection_blocks(run),
        Heading("Search tree"),
        Image(files["tree"], "Nodes by depth: the fill is the validation score, the ring the status (purple: "
                             "pruned, red: failed, blue: running, dashed: pending, dotted: interrupted), the shape "
                             "who made it (square: a person, diamond: the root); orange: best path, blue dashed: "
                             "fixed recipe."),
        Heading("Curves"),
        Image(files["curves"], f"{run.objective.metric} (top) and {train_key(run) or 'no training metric'} "
                               "(bottom) along the best path (orange) and the fixed recipe (blue, dashed)."),
        *_family_blocks(run, an, files),
        Heading("Knobs along the best path"),
        Image(files["knobs"], f"Best path bold, the other top-{k} paths faint, the fixed recipe dashed."),
        classification_table(an),
        *_hypothesis_blocks(run, an),
        Heading("Decisions along the best path"),
        decisions_table(run),
    ]
    md = folder / "report.md"
    md.write_text(to_markdown(blocks))
    page = folder / "report.html"
    page.write_text(to_html(blocks, folder, title))
    (folder / "summary.json").write_text(json.dumps(
        {"run": str(run.run_dir), "name": run.name, "task": run.task, "family": run.family.value,
         "summary": s.__dict__, "analysis": analysis_dict(an)},
        indent=2, default=str))
    return Report(folder, md, page, s, an, figs if keep_figures else {})


def _selection_blocks(run: RunData) -> list[Block]:
    """``select.reevaluate``: the top schedules evaluated afresh, and which one that named the best."""
    chosen = run.selection.get("nodes", {})
    if not chosen:
        return []
    best = run.best_leaf()
    metric, seeds = run.selection.get("metric", run.objective.metric), run.selection.get("seeds", [])
    rows = []
    for nid, v in sorted(chosen.items(), key=lambda kv: -run.objective.utility(kv[1]["mean"])):
        sc = v["scores"]
        se = statistics.stdev(sc) / math.sqrt(len(sc)) if len(sc) > 1 else None
        rows.append((nid, fmt(v["val_score"]), f"{fmt(v['mean'])}" + (f" ± {fmt(se, 2)}" if se is not None else ""),
                     ", ".join(fmt(x) for x in sc), "yes" if best is not None and int(nid) == best.id else ""))
    return [Heading("Selection"),
            Para(f"The {len(chosen)} best complete schedules by their {metric} in the search were evaluated "
                 f"{len(seeds)} more time(s) afresh (seeds {seeds}, the same for each); the best schedule is the "
                 "best of them by the mean of those evaluations."),
            Table(("node", f"{metric} in the search", "fresh mean ± se", "fresh evaluations", "named best"),
                  tuple(rows))]


def _family_blocks(run: RunData, an: Analysis, files: dict[str, str]) -> list[Block]:
    """RL and GRPO runs: their own telemetry (returns, success, rewards, KL, entropy ...)."""
    if run.family is Family.SUPERVISED:
        return []
    if "telemetry" not in files:
        return [Heading(f"{run.family.value.upper()} telemetry"),
                Para("The run recorded no returns, rewards, success, KL or entropy metrics to show.")]
    keys = telemetry_keys(run)
    return [Heading(f"{run.family.value.upper()} telemetry"),
            Image(files["telemetry"], f"{', '.join(keys)} along the best path (orange) and the fixed recipe "
                                      "(blue, dashed)."),
            _telemetry_table(run, keys)]


def _telemetry_table(run: RunData, keys: Sequence[str]) -> Table:
    """The telemetry at the end of the best and the fixed schedule."""
    def end(path: list) -> dict[str, float]:
        ms = run.metrics.get(path[-1].id, []) if len(path) > 1 else []
        return ms[-1][1] if ms else {}

    best, fixed = end(run.best_path()), end(run.fixed_path())
    return Table(("metric", "best schedule (end)", "fixed recipe (end)"),
                 tuple((k, fmt(best.get(k)), fmt(fixed.get(k))) for k in keys))


def _hypothesis_blocks(run: RunData, an: Analysis) -> list[Block]:
    """The capacity-versus-regularization reading: for supervised tasks only."""
    if run.family is not Family.SUPERVISED:
        return [Para(f"The labels above describe each knob's path. The reading \"capacity accumulates, "
                     f"regularization oscillates\" assumes supervised training (capacity knobs fit the data, "
                     f"regularization trades fit for generalisation) and is not applied to this "
                     f"{run.family.value} run.")]
    return [
        Heading("Capacity versus regularization", 3),
        Para(f"Verdict on \"capacity accumulates, regularization oscillates\": {an.verdict.value.upper()} "
             f"(capacity part {an.capacity.value}, regularization part {an.regularization.value}; best path of "
             f"{an.segments} segments, top-{an.k} paths)."),
        Para(an.reason),
        *[Para("Note: " + n) for n in an.notes],
        Para(RULES)]


def analysis_dict(an: Analysis) -> dict:
    return {
        "verdict": an.verdict.value, "capacity": an.capacity.value, "regularization": an.regularization.value,
        "reason": an.reason, "segments": an.segments, "k": an.k, "tol": an.tol, "notes": list(an.notes),
        "knobs": [{"knob": r.knob, "role": r.role.value, "label": r.best.label.value, "values": list(r.best.values),
                   "net_rel": r.best.net_rel, "net_range": r.best.net_range, "reversals": r.best.reversals,
                   "amplitude": r.best.amplitude, "agreement": r.agreement, "top_k_labels": r.distribution,
                   "evidence": r.evidence, "conforms": r.conforms} for r in an.knobs]}


# -- several runs ------------------------------------------------------------------


@dataclass(frozen=True)
class AnalyzeResult:
    folder: Path
    markdown: Path
    html: Path
    rows: tuple[tuple[RunData, Analysis], ...]
    figure: Figure | None


def analyze_table(rows: Sequence[tuple[RunData, Analysis]]) -> Table:
    out = []
    for run, an in rows:
        s = summarize(run)
        labels = "; ".join(f"{r.knob}: {r.best.label.short} (R={r.best.reversals}, {r.agreement}/{r.k})"
                           for r in an.knobs)
        out.append((run.task, str(run.seed), str(run.run_dir), fmt(s.best_val), fmt(s.fixed_val), s.gain_text,
                    fmt(s.best_test), fmt(s.fixed_test), labels, an.capacity.value, an.regularization.value,
                    plots.verdict_text(run, an)))
    return Table(("task", "seed", "run", "best val", "fixed val", "best against fixed", "best test", "fixed test",
                  "labels on best path", "capacity", "regularization", "verdict"), tuple(out))


def write_analyze(run_dirs: Sequence[str | Path], out: str | Path = "reports/analysis", k: int = 5,
                  keep_figures: bool = False) -> AnalyzeResult:
    """Aggregate several runs (tasks, seeds) into one table and one figure."""
    rows = tuple((run, analyse_run(run, k)) for run in (load_run(d) for d in run_dir_list(run_dirs)))
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    fig = plots.plot_analyze(rows)
    fig.savefig(folder / "analyze.png", dpi=110)
    if not keep_figures:
        plt.close(fig)
    verdicts = [plots.verdict_text(run, an) for run, an in rows]
    counts = ", ".join(f"{v}: {verdicts.count(v)}" for v in sorted(set(verdicts)))
    title = f"searchmgr analyze: {len(rows)} run(s)"
    blocks: list[Block] = [
        Heading(title, 1), Para(f"Verdicts on \"capacity accumulates, regularization oscillates\": {counts}."),
        analyze_table(rows),
        Image("analyze.png", "Left: each knob's label on the best path (R = reversals, top-k agreement) and the "
                             "run's verdict. Right: gain of the best schedule over the fixed recipe."),
        Para(RULES)]
    md = folder / "analyze.md"
    md.write_text(to_markdown(blocks))
    page = folder / "analyze.html"
    page.write_text(to_html(blocks, folder, title))
    (folder / "analyze.json").write_text(json.dumps(
        [{"run": str(run.run_dir), "task": run.task, "seed": run.seed, "summary": summarize(run).__dict__,
          "analysis": analysis_dict(an)} for run, an in rows], indent=2, default=str))
    return AnalyzeResult(folder, md, page, rows, fig if keep_figures else None)


def run_dir_list(run_dirs: Sequence[str | Path]) -> list[Path]:
    if not run_dirs:
        raise ValueError("give at least one run directory")
    return [Path(d) for d in run_dirs]
