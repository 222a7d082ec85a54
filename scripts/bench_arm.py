"""Benchmark the arm tasks: the scared, reckless and base fixed recipes, and a heuristic search per task.

    .venv/bin/python scripts/bench_arm.py                         # default preset: fixed recipes, then searches
    .venv/bin/python scripts/bench_arm.py --no-search --seeds 0 1 2
    .venv/bin/python scripts/bench_arm.py --only-search           # searches only (reuses reports/arm/bench.json)
    .venv/bin/python scripts/bench_arm.py --preset smoke --out runs/bench-arm-smoke   # seconds: checks the script

Fixed recipe: a recipe held for the whole schedule horizon (max_depth x segment_steps PPO
updates of the task's search defaults), trained as one segment. That is exactly what the
search's all-hold path trains (tests/tasks/test_arm.py proves a chain of held segments
equals one long segment). For each run it prints validation safe success (the policy with
its own noise, and deterministic), collision rates over environment steps, the wall time,
and the environment steps at which val/safe_success first reaches 0.9 (or "never").

Search: `searchmgr explore task=<task> manager.name=heuristic budget.steps=<B>` with the
same budget B for both tasks (the task's default); prints the best schedule's validation
and test safe success against the fixed path trained inside the same run, and the
environment steps at which the best path first reaches 0.9.

Writes <out>/bench.json and one figure per task (<out>/<task>.png: safe success and
collision rates over steps for the fixed recipes), with a small copy under docs/figures/ (default preset only).
Wall-clock numbers on a shared machine are upper bounds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from searchmgr.tasks import Segment, make_task
from searchmgr.tasks.arm import RECIPES

ROOT = Path(__file__).resolve().parents[1]
RUNS = {"scared": ("arm_scared", "task"), "reckless": ("arm_reckless", "task"), "base": ("arm_scared", "base")}
FIGURES = {"arm_scared": ("scared", "base"), "arm_reckless": ("reckless", "base")}
COLOURS = {"scared": "tab:blue", "reckless": "tab:red", "base": "tab:green", "search": "tab:purple"}
SERIES = {"val_ss": "val/safe_success", "val_ss_det": "val/safe_success_det", "val_coll": "val/collision_rate",
          "rl_ss": "rl/safe_success", "rl_coll": "rl/collision_rate", "std": "rl/action_std",
          "magnitude": "rl/action_magnitude"}


def first_reach(points: list[dict], key: str = "val_ss", level: float = 0.9) -> int | None:
    """Environment steps of the first evaluation where ``key`` reaches ``level``."""
    return next((p["env_steps"] for p in points if p.get(key) is not None and p[key] >= level), None)


def curve_point(step: int, metrics: dict[str, float], batch: int) -> dict:
    point = {"update": step, "env_steps": step * batch}
    point.update({short: metrics.get(key) for short, key in SERIES.items()})
    return point


def run_fixed(label: str, preset: str, seed: int) -> dict:
    name, recipe = RUNS[label]
    task = make_task(name, {"preset": preset, "recipe": recipe})
    d = task.search_defaults()
    horizon = d.segment_steps * d.max_depth
    batch = task.cfg.batch_size
    points: list[dict] = []
    t0 = time.perf_counter()

    def on_eval(step: int, metrics: dict[str, float]) -> bool:
        points.append(curve_point(step, metrics, batch))
        p = points[-1]
        print(f"  {label:<8} seed {seed} update {step:4d} env {p['env_steps']:>7} {time.perf_counter() - t0:6.1f}s  "
              f"val safe {p['val_ss']:.2f} (det {p['val_ss_det']:.2f})  val coll {p['val_coll']:.2f}  "
              f"train safe {p['rl_ss'] if p['rl_ss'] is not None else float('nan'):.2f}  std {p['std']:.3f}",
              flush=True)
        return False

    res = task.train_segment(task.init(seed), task.base_recipe(), Segment(0, horizon, horizon, d.eval_every), on_eval)
    wall = time.perf_counter() - t0
    return {"label": label, "task": name, "seed": seed, "recipe": task.base_recipe(), "updates": horizon,
            "env_steps": horizon * batch, "wall_s": wall, "points": points,
            "final_val": res.metrics["val/safe_success"], "final_val_det": res.metrics["val/safe_success_det"],
            "final_test": res.metrics["test/safe_success"], "final_val_coll": res.metrics["val/collision_rate"],
            "first_0_9": first_reach(points)}


def path_points(store, path, batch: int) -> list[dict]:
    points = []
    for node in path[1:]:
        points += [curve_point(step, m, batch) for step, m in store.metrics(node.id)]
    return points


def run_search(name: str, preset: str, seed: int, budget: int | None, out: Path) -> dict:
    from searchmgr import tree as T
    from searchmgr.progress import ConsoleReporter
    from searchmgr.rundir import open_run
    from searchmgr.search import explore

    task = make_task(name, {"preset": preset})
    budget = budget or task.search_defaults().budget_steps
    batch = task.cfg.batch_size
    run_dir = out / f"search-{name}-seed{seed}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    t0 = time.perf_counter()
    outcome = explore([f"task={name}", "manager.name=heuristic", f"budget.steps={budget}", f"seed={seed}",
                       f"preset={preset}", f"out={run_dir}"], reporter=ConsoleReporter())
    wall = time.perf_counter() - t0
    with open_run(run_dir) as store:
        nodes = store.nodes(store.search()["id"])
        best = path_points(store, outcome.best_path, batch)
        fixed = path_points(store, T.fixed_path(nodes), batch)
    return {"task": name, "seed": seed, "budget_updates": budget, "budget_env_steps": budget * batch,
            "wall_s": wall, "train_s": outcome.train_s, "nodes": outcome.nodes_trained, "run": str(run_dir),
            "best_val": outcome.best.val_score if outcome.best else None,
            "best_test": outcome.best.test_score if outcome.best else None,
            "fixed_val": outcome.fixed.val_score if outcome.fixed else None,
            "fixed_test": outcome.fixed.test_score if outcome.fixed else None,
            "best_path": [{"steps": [n.start_step, n.end_step], "recipe": n.recipe, "val": n.val_score}
                          for n in outcome.best_path[1:]],
            "best_points": best, "fixed_points": fixed,
            "best_first_0_9": first_reach(best), "fixed_first_0_9": first_reach(fixed)}


def figure(name: str, fixed: list[dict], searches: list[dict], path: Path, docs_copy: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 5.6))
    order = {label: i for i, label in enumerate(reversed(FIGURES[name]))}  # the task's own recipe drawn last, on top
    for r in sorted((r for r in fixed if r["label"] in order), key=lambda r: order[r["label"]]):
        xs = [p["env_steps"] / 1000 for p in r["points"]]
        c = COLOURS[r["label"]]
        std = r["recipe"]["action_std"]
        tag = f"{r['label']} (std {std:g}, lr {r['recipe']['actor_lr']:g}) seed {r['seed']}"
        alpha = 1.0 if r["seed"] == fixed[0]["seed"] else 0.45
        ax1.plot(xs, [p["val_ss"] for p in r["points"]], color=c, alpha=alpha, label=f"{tag}: with noise")
        ax1.plot(xs, [p["val_ss_det"] for p in r["points"]], color=c, alpha=alpha, ls="--",
                 label=f"{r['label']}: deterministic" if alpha == 1.0 else None)
        ax2.plot(xs, [p["val_coll"] for p in r["points"]], color=c, alpha=alpha, label=f"{tag}: validation")
        ax2.plot(xs, [p["rl_coll"] for p in r["points"]], color=c, alpha=alpha, ls=":",
                 label=f"{r['label']}: training episodes" if alpha == 1.0 else None)
    for s in searches:
        if s["task"] == name and s["best_points"]:
            xs = [p["env_steps"] / 1000 for p in s["best_points"]]
            ax1.plot(xs, [p["val_ss"] for p in s["best_points"]], color=COLOURS["search"], lw=2,
                     label=f"heuristic search: best schedule (seed {s['seed']})")
            ax2.plot(xs, [p["val_coll"] for p in s["best_points"]], color=COLOURS["search"], lw=2,
                     label="heuristic search: best schedule")
    ax1.axhline(0.9, color="grey", lw=0.8, ls="-.")
    ax1.set(title=f"{name}: validation safe success", xlabel="environment steps (thousands)",
            ylabel="safe-success rate", ylim=(-0.03, 1.03))
    ax2.set(title=f"{name}: collision episode rate", xlabel="environment steps (thousands)",
            ylabel="episodes ending in collision", ylim=(-0.02, 0.6))
    for ax in (ax1, ax2):
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    if docs_copy:
        small = ROOT / "docs" / "figures" / path.name
        small.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(small, dpi=80)
    plt.close(fig)


def report(fixed: list[dict], searches: list[dict]) -> None:
    def fmt(v):
        return "never" if v is None else f"{v:,}"

    print(f"\n{'fixed recipe':<10}{'seed':>5}{'updates':>9}{'env steps':>11}{'wall s':>8}{'val safe':>10}"
          f"{'val det':>9}{'test safe':>10}{'val coll':>10}   first val safe >= 0.9 at env step")
    for r in fixed:
        print(f"{r['label']:<10}{r['seed']:>5}{r['updates']:>9}{r['env_steps']:>11,}{r['wall_s']:>8.0f}"
              f"{r['final_val']:>10.2f}{r['final_val_det']:>9.2f}{r['final_test']:>10.2f}{r['final_val_coll']:>10.2f}"
              f"   {fmt(r['first_0_9'])}")
    if searches:
        print(f"\n{'heuristic search':<16}{'seed':>5}{'budget (upd)':>13}{'env steps':>12}{'wall s':>8}{'nodes':>7}"
              f"{'best val':>10}{'best test':>10}{'fixed val':>10}{'fixed test':>11}   first >= 0.9: best path / fixed path")
        for s in searches:
            print(f"{s['task']:<16}{s['seed']:>5}{s['budget_updates']:>13}{s['budget_env_steps']:>12,}"
                  f"{s['wall_s']:>8.0f}{s['nodes']:>7}{s['best_val']:>10.2f}{s['best_test']:>10.2f}"
                  f"{s['fixed_val']:>10.2f}{s['fixed_test']:>11.2f}   "
                  f"{fmt(s['best_first_0_9'])} / {fmt(s['fixed_first_0_9'])}")
            for seg in s["best_path"]:
                r = seg["recipe"]
                print(f"    updates {seg['steps'][0]:>4}-{seg['steps'][1]:<4} val {seg['val']:.2f}  "
                      + " ".join(f"{k}={v:.3g}" for k, v in r.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="default", help="task preset (default or smoke)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of the fixed-recipe runs")
    ap.add_argument("--recipes", nargs="+", default=list(RUNS), choices=list(RUNS), help="fixed recipes to run")
    ap.add_argument("--no-search", action="store_true", help="skip the heuristic searches")
    ap.add_argument("--only-search", action="store_true", help="skip the fixed recipes (reuse bench.json)")
    ap.add_argument("--search-seed", type=int, default=0, help="seed of the searches")
    ap.add_argument("--budget", type=int, default=None, help="search budget in PPO updates (default: the task's)")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "arm", help="where results and figures go")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--plot-only", action="store_true", help="redraw figures and tables from bench.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / "bench.json"
    previous = json.loads(results_file.read_text()) if results_file.exists() else {}
    if args.plot_only:
        for name in FIGURES:
            figure(name, previous["fixed"], previous.get("searches", []), args.out / f"{name}.png",
                   docs_copy=previous["preset"] == "default")
        report(previous["fixed"], previous.get("searches", []))
        return
    fixed = previous.get("fixed", []) if args.only_search else []
    if not args.only_search:
        for seed in args.seeds:
            for label in args.recipes:
                fixed.append(run_fixed(label, args.preset, seed))
                results_file.write_text(json.dumps({"preset": args.preset, "fixed": fixed}, indent=1))
    searches: list[dict] = []
    if not args.no_search:
        for name in FIGURES:
            searches.append(run_search(name, args.preset, args.search_seed, args.budget, args.out))
            results_file.write_text(json.dumps({"preset": args.preset, "fixed": fixed, "searches": searches},
                                               indent=1))
    else:
        searches = previous.get("searches", []) if previous.get("preset") == args.preset else []
    results_file.write_text(json.dumps({"preset": args.preset, "fixed": fixed, "searches": searches}, indent=1))
    for name in FIGURES:
        figure(name, fixed, searches, args.out / f"{name}.png", docs_copy=args.preset == "default")
    report(fixed, searches)
    print(f"\nresults: {results_file}; figures: {args.out}/arm_*.png" + (" (copies in docs/figures/)" if args.preset == "default" else ""))


if __name__ == "__main__":
    main()
