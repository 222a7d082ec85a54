"""The command line: a thin layer over :func:`searchmgr.search.explore`, the store and the schedule API."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path
from typing import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from searchmgr.config import ConfigError, override_keys
from searchmgr.errors import UserError
from searchmgr.lifecycle import RunStatus
from searchmgr.repair import repair
from searchmgr.rundir import claim_run, open_run
from searchmgr.run import Run
from searchmgr.sanitize import Redactor, cap, fmt, for_terminal, one_line
from searchmgr.schedule import export_schedule
from searchmgr.store import NodeStatus
from searchmgr.store.space import is_full
from searchmgr.tasks import SourceKind, available, load_task

MAX_ERROR_CHARS = 2_000  # an error message printed in full up to this size


def _console() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal:  # logs and pipes: do not squeeze tables into 80 columns
        console = Console(highlight=False, width=200)
    return console


def cmd_tasks(args: argparse.Namespace) -> int:
    console = _console()
    for name in args.references or available():
        task = load_task(name)
        source = "" if task.source.kind is SourceKind.ENTRY_POINT else f" from {escape(task.source.reference)}"
        console.print(f"[bold]{escape(name)}[/] ({task.family.value}){source} — optimise {task.objective.metric} "
                      f"({task.objective.direction.value}); presets {list(task.presets)}")
        table = Table(show_header=True, header_style="dim", box=None, pad_edge=False)
        for col in ("knob", "range", "scale", "step limit", "role", "base", "effect"):
            table.add_column(col)
        base = task.base_recipe()
        for k in task.surface.knobs:
            table.add_row(k.name, f"[{k.low:g}, {k.high:g}]", k.scale.value, k.step_limit_text(), k.role.value,
                          f"{base[k.name]:g}", k.effect)
        console.print(table)
        for c in task.surface.constraints:
            console.print(f"constraint: {escape(c.text())}")
        console.print("options (give them as name=value to explore and compare):")
        console.print(_options_table(task.inner.Options))
        console.print()
    return 0


def _options_table(options: type) -> Table:
    """A task's options (``name=value`` words of explore and compare): name, type, default and doc."""
    import typing

    from pydantic_core import PydanticUndefined

    table = Table(show_header=True, header_style="dim", box=None, pad_edge=False)
    for col in ("option", "type", "default", "doc"):
        table.add_column(col)
    for name, f in options.model_fields.items():
        ann = f.annotation
        kind = ann.__name__ if isinstance(ann, type) and typing.get_origin(ann) is None else str(ann).replace("typing.", "")
        default = "(required)" if f.default is PydanticUndefined and f.default_factory is None else (
            repr(f.default) if f.default_factory is None else "(computed)")
        doc = f.description or ("one of the presets above" if name == "preset" else "")
        table.add_row(escape(name), escape(kind), escape(default), escape(doc))
    return table


def _serve_settings(args: argparse.Namespace):
    try:
        from searchmgr.serve import ServeSettings
    except ImportError as e:
        raise ConfigError(f"the service needs the serve extra ({e.name} is missing): "
                          "pip install 'searchmgr[serve]'") from None
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a port; give 0..65535 (0 picks a free one)")
    return ServeSettings(host=args.host, port=args.port)


def cmd_explore(args: argparse.Namespace) -> int:
    from searchmgr.progress import ConsoleReporter
    from searchmgr.search import explore

    started, run_dirs = [], []

    def start(run_dir: Path) -> None:  # --serve: the service in a background thread of this process
        run_dirs.append(run_dir)
        if not args.serve:
            return
        from searchmgr.serve import start_service

        started.append(start_service([run_dir], _serve_settings(args), echo=lambda t: print(t, flush=True)))

    try:
        outcome = explore(args.overrides, resume=args.resume, reporter=ConsoleReporter(_console()), on_start=start)
    except KeyboardInterrupt:
        if run_dirs:
            print(f"\ninterrupted; continue with `searchmgr explore --resume {run_dirs[0]}`", file=sys.stderr)
            return 130
        raise
    if outcome.exit_status:
        return outcome.exit_status
    if started:
        print(f"search done; still serving {started[0].url} (Ctrl-C to quit)", flush=True)
        try:
            started[0].thread.join()
        except KeyboardInterrupt:
            started[0].stop()
    return 0


def cmd_supervise(args: argparse.Namespace) -> int:
    from searchmgr.progress import ConsoleReporter
    from searchmgr.supervise import supervise

    return supervise(args.overrides, resume=args.resume, reporter=ConsoleReporter(_console())).exit_status


def cmd_compare(args: argparse.Namespace) -> int:
    from searchmgr.compare import compare

    compare(args.words, resume=args.resume)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from searchmgr.config import parse_overrides
    from searchmgr.tasks.testing import check

    words = parse_overrides(args.words)
    options = words.get("task_options", {})
    steps = options.pop("steps", None)
    report = check(args.task.removeprefix("task="), options, seed=words.get("seed", 0),
                   steps=_positive(str(steps)) if steps is not None else None)
    print(report.render(), flush=True)
    return 0 if report.ok else 1


def cmd_serve(args: argparse.Namespace) -> int:
    from searchmgr.serve import serve

    serve(args.runs, _serve_settings(args), echo=lambda t: print(t, flush=True))
    return 0


def _add_serve_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1); any other needs a token for "
                   "writes: $SEARCHMGR_SERVE_TOKEN, else one is printed once")
    p.add_argument("--port", type=int, default=8470, help="port (8470; 0 picks a free one)")


def cmd_show(args: argparse.Namespace) -> int:
    console = _console()
    run = Run(args.run)
    cfg, objective, nodes, best = run.config, run.objective, run.nodes, run.best
    redact = Redactor.from_env(cfg.manager.api_key_env)

    def safe(text: object) -> str:  # stored text may come from an LLM or a damaged file: no markup, no escapes
        return escape(one_line(redact(str(text))))

    best_ids = {n.id for n in run.best_path}
    fixed_ids = {n.id for n in run.fixed_path}
    console.print(f"run {safe(args.run)}: task {run.task}, {len(nodes) - 1} segments, "
                  f"{run.steps_used}/{cfg.budget.steps} steps, objective {objective.metric} "
                  f"({objective.direction.value})")
    colour = {RunStatus.INTERRUPTED: "red", RunStatus.FAILED: "red", RunStatus.FINISHED: "green"}
    console.print(f"state: [{colour.get(run.state.status, 'yellow')}]{safe(run.state.line())}[/]")
    for k, v in run.info.items():
        console.print(f"{safe(k)}: {safe(v)}")
    table = Table(box=None, header_style="bold")
    for col in ("node", "parent", "depth", "steps", "status", "source", objective.metric, "test", "N", "recipe", ""):
        table.add_column(col)
    colours = {NodeStatus.DONE: "green", NodeStatus.PRUNED: "yellow", NodeStatus.FAILED: "red"}
    for n in nodes:
        mark = ("best " if n.id in best_ids and n.depth else "") + ("fixed" if n.id in fixed_ids and n.depth else "")
        status = run.state.node_status(n)
        table.add_row(str(n.id), str(n.parent_id or "-"), str(n.depth), f"{n.start_step}-{n.end_step}",
                      f"[{colours.get(status, 'white')}]{status.value}[/]", safe(n.source),
                      fmt(n.val_score), fmt(n.test_score), str(n.visits),
                      safe(" ".join(f"{k}={v:.3g}" for k, v in n.recipe.items())), mark)
    console.print(table)
    if best:
        console.print(f"best path: {' -> '.join(str(i) for i in sorted(best_ids))}  "
                      f"{objective.metric}={fmt(best.val_score)} (test {fmt(best.test_score)})")
    console.print(f"fixed path: {' -> '.join(str(i) for i in sorted(fixed_ids))}  "
                  f"{objective.metric}={fmt(run.fixed.val_score)} (test {fmt(run.fixed.test_score)})")
    disk = run.disk()
    console.print(f"checkpoints: {disk.kept} kept ({disk.keep}), {disk.bytes / 2**20:.1f} MiB on disk; "
                  f"{sum(1 for n in nodes if n.status.finished)} nodes trained")
    console.print(f"[red]damaged checkpoints: {len(disk.damaged)}[/]" if disk.damaged
                  else "kept checkpoints: all intact")
    for line in disk.damaged:
        console.print(f"  {safe(line)}")
    if args.decisions:
        from searchmgr.traces import render_decisions

        with open_run(args.run) as store:
            text = for_terminal(redact(render_decisions(store, run.search_id)))
        console.print(text, markup=False, highlight=False)  # LLM text is neither markup nor escapes
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    schedule = export_schedule(args.run)
    path = schedule.save(args.output)
    console = _console()
    console.print(f"wrote {escape(one_line(str(path)))}: {len(schedule.segments)} segments, "
                  f"{schedule.objective['metric']}={fmt(schedule.val_score)} "
                  f"(fixed {fmt(schedule.fixed.get('val_score'))})")
    for line in schedule.provenance.get("damage", []):
        console.print(f"[red]warning[/]: {escape(one_line(line))}")
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    with claim_run(args.run) as run:
        row = run.store.search()
        report = repair(run.store, run.path, row["id"])
    console = _console()
    for line in report.lines():
        console.print(escape(one_line(line)))
    console.print(f"{len(report.damaged)} damaged checkpoint(s) taken out of the search, {len(report.failed)} "
                  f"unfinished node(s) failed; continue with `searchmgr explore --resume {escape(str(args.run))}`"
                  if report.damaged else "every checkpoint is intact; nothing to repair")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from searchmgr.analysis.report import write_report

    report = write_report(args.run, args.output, k=args.top_k)
    s, an = report.summary, report.analysis
    console = _console()
    where = f" {s.fixed_where}" if s.fixed_where else ""
    console.print(f"best {s.metric}={fmt(s.best_val)} (test {fmt(s.best_test)}), fixed {fmt(s.fixed_val)} "
                  f"(test {fmt(s.fixed_test)}){where}; capacity-vs-regularization: {an.verdict.value} — {an.reason}",
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
    _add_search_commands(sub)
    _add_reading_commands(sub)
    return p


def _add_search_commands(sub: argparse._SubParsersAction) -> None:
    """tasks, explore, supervise, compare, check: the commands that train."""
    t = sub.add_parser("tasks", help="list tasks and their action surfaces", description="List the installed "
                       "tasks (built-in and registered by packages under the entry-point group searchmgr.tasks), or "
                       "the plug-ins given as package.module:attr or path/to/file.py:attr.")
    t.add_argument("references", nargs="*", metavar="TASK", help="only these tasks (names or plug-in references)")
    t.set_defaults(fn=cmd_tasks)
    e = sub.add_parser("explore", help="run or resume a search", description=(
        "Run a search. Settings are key=value words: search keys (" + ", ".join(override_keys()) + ") and task "
        "options (preset, data ...; see `searchmgr tasks`). "
        "Example: searchmgr explore task=toy budget.steps=400 seed=3 out=runs/toy3"))
    e.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    e.add_argument("--resume", type=Path, metavar="RUN", help="continue the run in this directory; budget, "
                   "manager, stopper and uct settings may change")
    e.add_argument("--serve", action="store_true", help="also run the live service (see `searchmgr serve`) in "
                   "this process; it keeps serving after the search ends, until Ctrl-C")
    _add_serve_options(e)
    e.set_defaults(fn=cmd_explore)
    v = sub.add_parser("supervise", help="train one live run, steered by the manager asynchronously",
                       description=(
        "Train the task's horizon once; every interval= steps the manager is asked (in the background for "
        "LLMs) and its verified, still fresh answer is applied at the next evaluation boundary, splitting the "
        "run into segments. Settings: interval= (steps between requests; 0 = never ask), stale_steps=, "
        "in_flight=, baseline=true (train the fixed recipe first, for comparison), search keys (task, seed, "
        "out, segment_steps, max_depth, eval_every, manager.*) and task options. "
        "Example: searchmgr supervise task=arm_scared interval=15"))
    v.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    v.add_argument("--resume", type=Path, metavar="RUN", help="continue the supervised run in this directory; "
                   "manager and supervise settings may change")
    v.set_defaults(fn=cmd_supervise)
    c = sub.add_parser("compare", help="run the tree search and the baselines at equal budget over seeds",
                       description="Run every method at the same step budget, seeds and task options and write "
                       "compare.json, compare.md and compare.png (best-so-far validation, mean ± se over seeds). "
                       "Methods: tree (model manager), tree:MANAGER, grid, random, tpe (Optuna), hyperband (Optuna TPE "
                       "with its HyperbandPruner), asha, pbt, pb2 (default: all of them). "
                       "Words: methods=, seeds=N (seeds 0..N-1), out=, grid.KNOB=V1,V2, and any explore setting "
                       "(task=, budget.steps=, task options ...). Example: searchmgr compare task=toy "
                       "methods=tree,grid,random,tpe,pbt seeds=3 budget.steps=2400 out=cmp/toy")
    c.add_argument("words", nargs="*", metavar="KEY=VALUE")
    c.add_argument("--resume", type=Path, metavar="DIR", help="continue a comparison; methods= and seeds= may add "
                   "methods and seeds")
    c.set_defaults(fn=cmd_compare)
    k = sub.add_parser("check", help="check a task's contract and that every knob changes training",
                       description="Check the task contract (as searchmgr.tasks.testing.check_task does: metrics, "
                       "exact resume, stop), then train one short segment with each knob at its low and at its high "
                       "bound and report a knob whose change leaves training bit-identical, with the likely cause. "
                       "Words: task options (preset=smoke ...), seed=, steps= (segment length; default the "
                       "preset's eval_every). Exit status 1 when something is wrong. "
                       "Example: searchmgr check examples/cartpole_ppo.py:CartPolePPO preset=smoke")
    k.add_argument("task", metavar="TASK", help="a task name or plug-in reference (module:attr, file.py:attr)")
    k.add_argument("words", nargs="*", metavar="KEY=VALUE")
    k.set_defaults(fn=cmd_check)


def _add_reading_commands(sub: argparse._SubParsersAction) -> None:
    """serve, show, export, report, analyze, repair, replay: the commands over runs that exist."""
    v = sub.add_parser("serve", help="live service and dashboard over runs (needs the serve extra)",
                       description="Serve runs' trees, node panels and best schedules, and take a person's "
                       "commands (manual children, pause, resume, stop, close a subtree) that the running search "
                       "applies. Example: searchmgr serve runs/ts runs/toy3")
    v.add_argument("runs", type=Path, nargs="+", metavar="RUN")
    _add_serve_options(v)
    v.set_defaults(fn=cmd_serve)
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
    r.add_argument("-k", "--top-k", type=_positive, default=5, help="paths compared with the best one (5)")
    r.set_defaults(fn=cmd_report)
    a = sub.add_parser("analyze", help="aggregate several runs (tasks, seeds) into one table and figure",
                       description="Classify each run's knob trajectories and judge 'capacity accumulates, "
                       "regularization oscillates' per run; write analyze.md/.html/.png/.json.")
    a.add_argument("runs", type=Path, nargs="+", metavar="RUN")
    a.add_argument("-o", "--output", type=Path, default=Path("reports/analysis"),
                   help="output folder (reports/analysis)")
    a.add_argument("-k", "--top-k", type=_positive, default=5, help="paths compared with the best one per run (5)")
    a.set_defaults(fn=cmd_analyze)
    f = sub.add_parser("repair", help="take nodes with missing or corrupt checkpoints out of the search",
                       description="Check every checkpoint of a run against its sha256. A node whose file is "
                       "missing or corrupt loses its checkpoint (nothing branches from it again) and its pending or "
                       "interrupted children fail; the search can then be resumed. `explore --resume` does the same "
                       "before training.")
    f.add_argument("run", type=Path, metavar="RUN")
    f.set_defaults(fn=cmd_repair)
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


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {cap(repr(text), 40)}")
    return value


def _error(message: str) -> int:
    """Print a user error: no secrets (the default key variable's value, anything shaped like a key), no terminal
    escapes, no endless echo of the input."""
    print(f"error: {cap(for_terminal(Redactor.from_env('OPENAI_API_KEY')(message)), MAX_ERROR_CHARS)}",
          file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except UserError as e:  # its message names the fix; anything else is a bug and shows its traceback
        return _error(str(e))
    except (sqlite3.DatabaseError, OSError) as e:
        if is_full(e):  # not damage: once space is freed, the same command goes on
            return _error(f"no space left on the disk ({e}): free space there and run the command again "
                          "(a run resumes with --resume; nothing of it is damaged)")
        if isinstance(e, OSError):  # a path the user gave cannot be written or read
            return _error(f"{e.strerror or e}: {e.filename or ''}")
        return _error(f"the run's tree.db is damaged ({e}); restore it from a copy or start a new run")
    except KeyboardInterrupt:
        run = getattr(args, "resume", None)
        print(f"\ninterrupted; continue with `searchmgr {args.command} --resume {run}`" if run else "\ninterrupted",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
