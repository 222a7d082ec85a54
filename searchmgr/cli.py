"""The command line: a thin layer over :func:`searchmgr.search.explore`, the store and the schedule API."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from rich.console import Console
from rich.table import Table

from searchmgr import tree as T
from searchmgr.config import ConfigError, override_keys
from searchmgr.schedule import ScheduleError, export_schedule
from searchmgr.store import CheckpointCorrupt, NodeStatus, StoreError, TreeStore
from searchmgr.tasks import available, make_task, task_class

USER_ERRORS = (ConfigError, StoreError, CheckpointCorrupt, ScheduleError, FileNotFoundError)


def _console() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal:  # logs and pipes: do not squeeze tables into 80 columns
        console = Console(highlight=False, width=200)
    return console


def cmd_tasks(args: argparse.Namespace) -> int:
    console = _console()
    for name in available():
        cls = task_class(name)
        task = make_task(name, {})
        console.print(f"[bold]{name}[/] ({cls.family.value}) — optimise {cls.objective.metric} "
                      f"({cls.objective.direction.value}); presets {list(cls.presets)}")
        table = Table(show_header=True, header_style="dim", box=None, pad_edge=False)
        for col in ("knob", "range", "scale", "step limit", "role", "base", "effect"):
            table.add_column(col)
        base = task.base_recipe()
        for k in task.surface.knobs:
            table.add_row(k.name, f"[{k.low:g}, {k.high:g}]", k.scale.value, k.step_limit_text(), k.role.value,
                          f"{base[k.name]:g}", k.effect)
        console.print(table)
        console.print()
    return 0


def cmd_explore(args: argparse.Namespace) -> int:
    from searchmgr.progress import ConsoleReporter
    from searchmgr.search import explore

    explore(args.overrides, resume=args.resume, reporter=ConsoleReporter(_console()))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from searchmgr.compare import compare

    compare(args.words, resume=args.resume)
    return 0


def _open(run: Path) -> TreeStore:
    from searchmgr.search import DB_NAME, RunNotFound

    if not (run / DB_NAME).exists():
        raise RunNotFound(run)
    return TreeStore(run / DB_NAME)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def cmd_show(args: argparse.Namespace) -> int:
    console = _console()
    with _open(args.run) as store:
        row = store.search()
        cfg = row["config"]
        objective = task_class(row["task"]).objective
        nodes = store.nodes(row["id"])
        best = T.best_leaf(nodes, objective, cfg["max_depth"])
        best_ids = {n.id for n in T.path_to(nodes, best.id)} if best else set()
        fixed_ids = {n.id for n in T.fixed_path(nodes)}
        console.print(f"run {args.run}: task {row['task']}, {len(nodes) - 1} segments, "
                      f"{T.steps_used(nodes)}/{cfg['budget']['steps']} steps, objective {objective.metric} "
                      f"({objective.direction.value})")
        for k, v in row["info"].items():
            console.print(f"{k}: {v}")
        table = Table(box=None, header_style="bold")
        for col in ("node", "parent", "depth", "steps", "status", "source", objective.metric, "test", "N", "recipe",
                    ""):
            table.add_column(col)
        colours = {NodeStatus.DONE: "green", NodeStatus.PRUNED: "yellow", NodeStatus.FAILED: "red"}
        for n in nodes:
            mark = ("best " if n.id in best_ids and n.depth else "") + ("fixed" if n.id in fixed_ids and n.depth else "")
            table.add_row(str(n.id), str(n.parent_id or "-"), str(n.depth), f"{n.start_step}-{n.end_step}",
                          f"[{colours.get(n.status, 'white')}]{n.status.value}[/]", n.source, _fmt(n.val_score),
                          _fmt(n.test_score), str(n.visits),
                          " ".join(f"{k}={v:.3g}" for k, v in n.recipe.items()), mark)
        console.print(table)
        if best:
            console.print(f"best path: {' -> '.join(str(i) for i in sorted(best_ids))}  "
                          f"{objective.metric}={_fmt(best.val_score)} (test {_fmt(best.test_score)})")
        fixed = T.fixed_path(nodes)[-1]
        console.print(f"fixed path: {' -> '.join(str(i) for i in sorted(fixed_ids))}  "
                      f"{objective.metric}={_fmt(fixed.val_score)} (test {_fmt(fixed.test_score)})")
        kept = [args.run / n.checkpoint for n in nodes if n.checkpoint]
        size = sum(p.stat().st_size for p in kept if p.exists())
        console.print(f"checkpoints: {len(kept)} kept ({cfg.get('checkpoints', {}).get('keep', 'all')}), "
                      f"{size / 2**20:.1f} MiB on disk; {sum(1 for n in nodes if n.status.finished)} nodes trained")
        if args.decisions:
            from searchmgr.traces import render_decisions

            console.print(render_decisions(store, row["id"]), markup=False, highlight=False)  # LLM text is not markup
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    schedule = export_schedule(args.run)
    path = schedule.save(args.output)
    _console().print(f"wrote {path}: {len(schedule.segments)} segments, {schedule.objective['metric']}="
                     f"{_fmt(schedule.val_score)} (fixed {_fmt(schedule.fixed.get('val_score'))})")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from searchmgr.analysis.report import write_report

    report = write_report(args.run, args.output, k=args.top_k)
    s, an = report.summary, report.analysis
    console = _console()
    console.print(f"best {s.metric}={_fmt(s.best_val)} (test {_fmt(s.best_test)}), fixed {_fmt(s.fixed_val)} "
                  f"(test {_fmt(s.fixed_test)}); capacity-vs-regularization: {an.verdict.value} — {an.reason}",
                  markup=False)
    console.print(f"report written to {report.folder}: {report.markdown.name}, {report.html.name} "
                  "(self-contained), tree.png, curves.png, knobs.png, summary.json")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from searchmgr.analysis.report import analyze_table, write_analyze

    result = write_analyze(args.runs, args.output, k=args.top_k)
    console = _console()
    table = analyze_table(result.rows)
    rich_table = Table(box=None, header_style="bold")
    for col in table.header:
        rich_table.add_column(col)
    for row in table.rows:
        rich_table.add_row(*row)
    console.print(rich_table)
    console.print(f"analysis written to {result.folder}: {result.markdown.name}, {result.html.name}, analyze.png, "
                  "analyze.json")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    import json

    from searchmgr.replay import replay

    console = _console()
    result = replay(args.schedule, args.overrides,
                    on_eval=(lambda step, m: console.print(f"  step {step}: " + " ".join(
                        f"{k}={v:.4g}" for k, v in m.items()))) if args.verbose else None)
    console.print(result.render(), markup=False)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_dict(), indent=2))
        console.print(f"wrote {args.json}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="searchmgr", description="Discover adaptive training schedules by UCT search "
                                "over checkpointed recipe segments.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    t = sub.add_parser("tasks", help="list tasks and their action surfaces")
    t.set_defaults(fn=cmd_tasks)
    e = sub.add_parser("explore", help="run or resume a search", description=(
        "Run a search. Settings are key=value words: search keys (" + ", ".join(override_keys()) + ") and task "
        "options (preset, data ...; see `searchmgr tasks`). "
        "Example: searchmgr explore task=toy budget.steps=400 seed=3 out=runs/toy3"))
    e.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    e.add_argument("--resume", type=Path, metavar="RUN", help="continue the run in this directory; budget, "
                   "manager, stopper and uct settings may change")
    e.set_defaults(fn=cmd_explore)
    c = sub.add_parser("compare", help="run the tree search and the baselines at equal budget over seeds",
                       description="Run every method at the same step budget, seeds and task options and write "
                       "compare.json, compare.md and compare.png (best-so-far validation, mean ± se over seeds). "
                       "Methods: tree (heuristic manager), tree:MANAGER, grid, random, tpe (Optuna), pbt. "
                       "Words: methods=, seeds=N (seeds 0..N-1), out=, grid.KNOB=V1,V2, and any explore setting "
                       "(task=, budget.steps=, task options ...). Example: searchmgr compare task=toy "
                       "methods=tree,grid,random,tpe,pbt seeds=3 budget.steps=2400 out=cmp/toy")
    c.add_argument("words", nargs="*", metavar="KEY=VALUE")
    c.add_argument("--resume", type=Path, metavar="DIR", help="continue a comparison; methods= and seeds= may add "
                   "methods and seeds")
    c.set_defaults(fn=cmd_compare)
    s = sub.add_parser("show", help="print a run's tree, best path and fixed path")
    s.add_argument("run", type=Path, metavar="RUN")
    s.add_argument("--decisions", action="store_true", help="also print the decision traces per node")
    s.set_defaults(fn=cmd_show)
    x = sub.add_parser("export", help="write the best root-to-leaf schedule as JSON")
    x.add_argument("run", type=Path, metavar="RUN")
    x.add_argument("-o", "--output", type=Path, default=Path("schedule.json"), help="output file (schedule.json)")
    x.set_defaults(fn=cmd_export)
    r = sub.add_parser("report", help="write a run's report (Markdown, HTML, figures) and print where it is",
                       description="Write a report folder for one run: the tree, best-vs-fixed curves, knob "
                       "trajectories with their capacity-vs-regularization labels, the decisions along the best path "
                       "and a summary table, as report.md + PNGs and a self-contained report.html.")
    r.add_argument("run", type=Path, metavar="RUN")
    r.add_argument("-o", "--output", type=Path, default=None, help="report folder (default RUN/report)")
    r.add_argument("-k", "--top-k", type=int, default=5, help="paths compared with the best one (5)")
    r.set_defaults(fn=cmd_report)
    a = sub.add_parser("analyze", help="aggregate several runs (tasks, seeds) into one table and figure",
                       description="Classify each run's knob trajectories and judge 'capacity accumulates, "
                       "regularization oscillates' per run; write analyze.md/.html/.png/.json.")
    a.add_argument("runs", type=Path, nargs="+", metavar="RUN")
    a.add_argument("-o", "--output", type=Path, default=Path("reports/analysis"),
                   help="output folder (reports/analysis)")
    a.add_argument("-k", "--top-k", type=int, default=5, help="paths compared with the best one per run (5)")
    a.set_defaults(fn=cmd_analyze)
    y = sub.add_parser("replay", help="train from scratch following an exported schedule; compare with the search",
                       description="Train the schedule's task from scratch, segment by segment under the "
                       "schedule's recipes, and print the scores reached beside those the search recorded. "
                       "Overrides: seed=, eval_every= and task options (preset=, data= ...). "
                       "Example: searchmgr replay schedule.json seed=1")
    y.add_argument("schedule", type=Path, metavar="SCHEDULE.json")
    y.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    y.add_argument("--json", type=Path, default=None, help="also write the comparison as JSON here")
    y.add_argument("-v", "--verbose", action="store_true", help="print every evaluation")
    y.set_defaults(fn=cmd_replay)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        run = getattr(args, "resume", None) or "RUN"
        print(f"\ninterrupted; continue with `searchmgr explore --resume {run}`", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
