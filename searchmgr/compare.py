"""``searchmgr compare``: every method at the same step budget, seeds and task options.

Methods: ``tree`` (the UCT search with the default manager, ``model``; ``tree:MANAGER`` for another
manager), and the baselines ``grid``, ``random``, ``tpe`` (Optuna), ``hyperband`` (Optuna's TPE with its
HyperbandPruner), ``asha`` (asynchronous successive halving), ``pbt`` and ``pb2``
(:mod:`searchmgr.policies`). Each (method, seed) is an ordinary run directory
``OUT/METHOD/seedK`` (``:`` becomes ``-``), so ``show``, ``report``, ``export`` and
``replay`` work on every method's best schedule. ``compare.json`` is rewritten after
every run; ``--resume`` skips finished runs, resumes interrupted ones, and may add seeds
or methods. Selection is on validation; the test score of the selected schedule is
reported beside it.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from searchmgr import tree as T
from searchmgr.config import ConfigError, build_config, merge, parse_overrides
from searchmgr.managers import manager_names
from searchmgr.progress import Reporter
from searchmgr.lifecycle import RunStatus
from searchmgr.run import Run
from searchmgr.sanitize import fmt

BASELINES = ("grid", "random", "tpe", "hyperband", "asha", "pbt", "pb2")
DEFAULT_METHODS = ("tree", *BASELINES)
RESULT = "compare.json"


@dataclass(frozen=True)
class Method:
    key: str  # as written: tree, tree:random, grid ...
    overrides: dict[str, Any]

    @property
    def folder(self) -> str:
        return self.key.replace(":", "-")

    @classmethod
    def parse(cls, key: str) -> "Method":
        name, _, manager = key.partition(":")
        if name == "tree":
            manager = manager or "model"  # the default manager
            if manager not in manager_names():
                raise ConfigError(f"unknown manager {manager!r} in method {key!r}; managers are {manager_names()}")
            return cls(key, {"policy": {"name": "uct"}, "manager": {"name": manager}})
        if name in BASELINES and not manager:
            return cls(key, {"policy": {"name": name}})
        raise ConfigError(f"unknown method {key!r}; choose among tree, tree:<manager>, {', '.join(BASELINES)}")


def parse(words: Sequence[str]) -> tuple[list[Method] | None, int | None, Path | None, dict]:
    """Split compare's own words (``methods=``, ``seeds=``, ``out=``, ``grid.KNOB=V1,V2``) from the run overrides."""
    methods = seeds = out = None
    grid: dict[str, list[float]] = {}
    rest = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq:
            raise ConfigError(f"{word!r} is not key=value (for example methods=tree,grid seeds=3)")
        if key == "methods":
            keys = [k.strip() for k in value.split(",") if k.strip()]
            if not keys:
                raise ConfigError("methods= is empty; for example methods=tree,grid,random,tpe,pbt")
            methods = [Method.parse(k) for k in keys]
        elif key == "seeds":
            try:
                seeds = int(value)
            except ValueError:
                raise ConfigError(f"seeds={value[:40]!r} is not a whole number; for example seeds=3") from None
            if seeds < 1:
                raise ConfigError(f"seeds={seeds}: compare needs at least one seed (seeds=3 runs seeds 0, 1, 2)")
        elif key == "out":
            if not value.strip():
                raise ConfigError("out= is empty; name the comparison's folder, for example out=cmp/toy")
            out = Path(value)
        elif key.startswith("grid."):
            try:
                grid[key[5:]] = [float(v) for v in value.split(",")]
            except ValueError:
                raise ConfigError(f"{key}={value[:60]!r}: give comma-separated numbers, like {key}=0.001,0.01") from None
        elif key == "seed":
            raise ConfigError("compare runs seeds 0..N-1: use seeds=N, not seed=")
        else:
            rest.append(word)
    return methods, seeds, out, {**parse_overrides(rest), **({"policy": {"grid": grid}} if grid else {})}


def _se(xs: list[float]) -> float:
    return statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else 0.0


def run_summary(run: Path, objective, max_depth: int) -> dict:
    """What compare records of one run, and its best-so-far curve over steps spent."""
    read = Run(run)
    nodes, best = read.nodes, read.best
    curve, spent, best_u = [], 0, -math.inf
    for n in sorted((n for n in nodes if n.status.finished and n.depth > 0), key=lambda n: (n.finished_at, n.id)):
        spent += n.steps_trained
        if n.depth == max_depth and n.val_score is not None and objective.utility(n.val_score) > best_u:
            best_u = objective.utility(n.val_score)
        curve.append([spent, None if best_u == -math.inf else (-best_u if objective.direction.value == "minimize"
                                                               else best_u)])
    complete = bool(best and best.depth == max_depth)  # an unfinished schedule is no result: not counted
    return {"best_val": best.val_score if complete else None, "test": best.test_score if complete else None,
            "complete": complete, "steps_used": T.steps_used(nodes),
            "nodes": sum(n.depth > 0 for n in nodes), "wall_s": read.wall_s, "curve": curve,
            "state": read.state.status.value}


def compare(words: Sequence[str] = (), resume: str | Path | None = None, say=print) -> dict:
    """Run (or continue) a comparison; the Python twin of ``searchmgr compare``. Returns compare.json's content."""
    from searchmgr.search import explore, resolve

    methods, seeds, out, overrides = parse(words)
    if resume is not None:
        out = Path(resume)
        result = _reopen(out, overrides)
        overrides = result["overrides"]
        known = [Method.parse(k) for k in result["methods"]]
        methods = known + [m for m in (methods or []) if m.key not in result["methods"]]
        seeds = max(seeds or 0, result["seeds"])
    else:
        methods, seeds, out = _fresh(methods, seeds, out, overrides)
        result = None
    # everything is checked before any training: every method's configuration, on the task itself
    configs = {}
    for m in methods:
        config, task = resolve(build_config(merge(overrides, m.overrides)))
        configs[m.key] = config
    objective = task.objective
    if result is None:
        result = _header(config, task, overrides, seeds)
    result["seeds"] = seeds
    for m in methods:
        result["methods"].setdefault(m.key, {"seeds": []})
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out, result)  # before any training: a comparison killed in its first run resumes too
    todo = [(s, m) for s in range(seeds) for m in methods
            if not any(r["seed"] == s for r in result["methods"][m.key]["seeds"])]
    for i, (seed, m) in enumerate(todo, 1):
        run = out / m.folder / f"seed{seed}"
        say(f"[{i}/{len(todo)}] {m.key} seed {seed} -> {run}")
        t0 = time.perf_counter()
        if (run / "tree.db").exists():
            explore({}, resume=run, reporter=Reporter())
        else:
            explore(merge(overrides, {**m.overrides, "seed": seed, "out": str(run)}), reporter=Reporter())
        summary = run_summary(run, objective, configs[m.key].max_depth)
        if summary["state"] != RunStatus.FINISHED.value:  # stopped (a signal, a command): not a result yet
            say(f"    {m.key} seed {seed} is {summary['state']}, not finished; the comparison stops here: continue "
                f"it with `searchmgr compare --resume {out}`")
            return result
        result["methods"][m.key]["seeds"].append({"seed": seed, "run": str(run), **summary})
        _aggregate(result)
        _write(out, result)
        say(f"    best {objective.metric}={fmt(summary['best_val'])} (test {fmt(summary['test'])}), "
            f"steps {summary['steps_used']}/{config.budget.steps}, {time.perf_counter() - t0:.0f}s")
    _conclude(out, result, say)
    return result


def _reopen(out: Path, overrides: dict) -> dict:
    """The comparison stored at ``out`` (``--resume``), checked; a resume may add methods and seeds, nothing else."""
    if not (out / RESULT).exists():
        raise ConfigError(f"{out} holds no {RESULT}; start a comparison with `searchmgr compare task=... out={out}`")
    try:
        result = json.loads((out / RESULT).read_text())
        if not isinstance(result, dict) or not isinstance(result.get("methods"), dict):
            raise ValueError("no methods")
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ConfigError(f"{out / RESULT} is not a comparison ({exc}); its runs under {out} are untouched: move "
                          f"that file aside and start the comparison again with its words and out={out}; runs "
                          f"already there resume instead of starting over") from None
    if overrides:
        raise ConfigError(f"resume keeps the task, options and budget of the comparison; it may only add "
                          f"methods= or seeds=; drop {sorted(overrides)}")
    return result


def _fresh(methods: list | None, seeds: int | None, out: Path | None,
           overrides: dict) -> tuple[list, int, Path]:
    """A new comparison's methods (the defaults unless given), seeds (3) and folder (named after the task)."""
    if "task" not in overrides:
        raise ConfigError("which task? add task=<name>; see `searchmgr tasks`")
    methods = methods or [Method.parse(k) for k in DEFAULT_METHODS]
    name = str(overrides["task"]).rpartition(":")[2]  # a plug-in reference's attribute, not its path
    out = out or Path("runs") / f"compare-{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if (out / RESULT).exists():
        raise ConfigError(f"{out} already holds a comparison; continue it with `searchmgr compare --resume {out}`")
    return methods, seeds or 3, out


def _header(config, task, overrides: dict, seeds: int) -> dict:
    """What a new compare.json records before its first run."""
    objective = task.objective
    return {"task": config.task, "objective": {"metric": objective.metric, "direction":
            objective.direction.value, "test_metric": objective.test_metric},
            "budget_steps": config.budget.steps, "horizon": config.horizon,
            "task_options": config.task_options, "overrides": json.loads(json.dumps(overrides, default=str)),
            "task_info": json.loads(json.dumps(task.info(), default=str)),  # grpo_arith: the warm-up's print
            "seeds": seeds, "methods": {}}


def _conclude(out: Path, result: dict, say) -> None:
    """Write the finished comparison (json, markdown, figure) and print its table."""
    _aggregate(result)
    _write(out, result)
    from searchmgr.analysis.compare import render_markdown

    say(render_markdown(result).rstrip())  # the table, as compare.md holds it
    for key, entry in result["methods"].items():
        if entry["seeds"] and entry["best_val"] is None:
            say(f"{key} completed no schedule (no chain reached the horizon) in {len(entry['seeds'])} seed(s): "
                "it has no result; give it a larger budget.steps")
    say(f"wrote {out / RESULT}, {out / 'compare.md'} and {out / 'compare.png'}")


def _aggregate(result: dict) -> None:
    for entry in result["methods"].values():
        rows = sorted(entry["seeds"], key=lambda r: r["seed"])
        entry["seeds"] = rows
        for key in ("best_val", "test", "steps_used", "wall_s"):
            xs = [r[key] for r in rows if r[key] is not None]
            entry[key] = {"mean": statistics.fmean(xs), "se": _se(xs), "n": len(xs)} if xs else None


def _write_json(out: Path, result: dict) -> None:
    tmp = out / (RESULT + ".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(out / RESULT)


def _write(out: Path, result: dict) -> None:
    from searchmgr.analysis.compare import plot_compare, render_markdown

    _write_json(out, result)
    (out / "compare.md").write_text(render_markdown(result))
    plot_compare(result, out / "compare.png")
