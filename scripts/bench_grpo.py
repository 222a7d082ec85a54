"""Benchmark grpo_arith: the fixed base recipe, recipes that fail, and a heuristic search at equal budget.

    .venv/bin/python scripts/bench_grpo.py                  # default preset, CPU, several minutes
    .venv/bin/python scripts/bench_grpo.py --skip-search    # fixed recipes only
    .venv/bin/python scripts/bench_grpo.py --preset smoke   # seconds, to check the script itself

Every fixed recipe is trained over the schedule horizon (max_depth x segment_steps)
exactly as the search's all-hold path trains it: segment by segment, each resumed
from the previous checkpoint. The search gets the preset's step budget (its own
fixed path included) and its best root-to-leaf schedule is compared with the fixed
recipe at the same horizon. Writes ``reports/grpo_bench/`` (figures, JSON) and a
small copy of the figure to ``docs/figures/grpo_arith_bench.png``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def fixed_run(task, recipe: dict, seed: int, seg_steps: int, depth: int, eval_every: int) -> dict:
    """Train ``recipe`` for the whole horizon; return the evaluations and the wall time."""
    from searchmgr.tasks.base import Segment

    history: list[tuple[int, dict]] = []

    def on_eval(step: int, metrics: dict) -> bool:
        history.append((step, dict(metrics)))
        return False  # never stop a fixed run

    state, horizon, t0 = task.init(seed), seg_steps * depth, time.perf_counter()
    result = None
    for d in range(depth):
        result = task.train_segment(state, recipe, Segment(d * seg_steps, seg_steps, horizon, eval_every), on_eval)
        state = result.checkpoint
    return {"recipe": recipe, "history": history, "final": result.metrics, "wall_s": time.perf_counter() - t0}


def search_run(preset: str, seed: int, budget: int, out: Path, extra: list[str]) -> dict:
    """A heuristic search with the task's defaults; returns its best path's evaluations."""
    from searchmgr import tree as T
    from searchmgr.rundir import open_run
    from searchmgr.search import explore
    from searchmgr.tasks import make_task

    if out.exists():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    outcome = explore([f"task=grpo_arith", f"preset={preset}", "manager.name=heuristic", f"budget.steps={budget}",
                       f"seed={seed}", f"out={out}", *extra])
    wall = time.perf_counter() - t0
    objective = make_task("grpo_arith", {"preset": preset}).objective
    with open_run(out) as store:
        sid = store.search()["id"]
        nodes = store.nodes(sid)
        path = T.path_to(nodes, outcome.best.id)[1:] if outcome.best else []
        fixed = T.fixed_path(nodes)[1:]
        hist = lambda ns: [(s, m) for n in ns for s, m in store.metrics(n.id)]  # noqa: E731
        return {
            "best_val": outcome.best.val_score if outcome.best else None,
            "best_test": outcome.best.test_score if outcome.best else None,
            "fixed_val": outcome.fixed.val_score if outcome.fixed else None,
            "fixed_test": outcome.fixed.test_score if outcome.fixed else None,
            "stop_reason": outcome.stop_reason, "steps_used": outcome.steps_used, "nodes": sum(n.depth > 0 for n in nodes),
            "pruned": sum(n.status.value == "pruned" for n in nodes), "wall_s": wall,
            "overhead_share": outcome.overhead_share, "metric": objective.metric,
            "path": [{"steps": [n.start_step, n.end_step], "recipe": n.recipe, "val": n.val_score} for n in path],
            "history": hist(path), "fixed_history": hist(fixed),
        }


def summarise(name: str, run: dict) -> str:
    hist = run["history"]
    vals = [m["val/accuracy"] for _, m in hist]
    f = run["final"]
    return (f"{name:<12} val {vals[0]:.3f} -> {f['val/accuracy']:.3f} (best {max(vals):.3f}, unsigned "
            f"{f['val/accuracy_unsigned']:.3f})  "
            f"test {f['test/accuracy']:.3f}  reward_std {f.get('train/reward_std', float('nan')):.3f}  "
            f"zero-std groups {f.get('train/frac_zero_std', float('nan')):.2f}  kl {f.get('train/kl', float('nan')):.3f}"
            f"  wall {run['wall_s']:.0f}s")


def plot(runs: dict[str, dict], search: dict | None, start_acc: float, path: Path, small: Path | None,
         note: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {name: r["history"] for name, r in runs.items()}
    if search is not None:
        series["heuristic search (best path)"] = search["history"]
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.2))
    for i, (name, hist) in enumerate(series.items()):
        c = {"base": "tab:blue", "hot lr": "tab:red", "cold": "tab:orange"}.get(name, "tab:green")
        style = dict(color=c, linestyle="--" if name.startswith("heuristic") else "-")
        steps = [0] + [s for s, _ in hist]
        axes[0].plot(steps, [start_acc] + [m["val/accuracy"] for _, m in hist], label=name, marker=".", **style)
        for ax, key in ((axes[1], "train/reward_std"), (axes[2], "train/frac_zero_std"), (axes[3], "train/kl")):
            pts = [(s, m[key]) for s, m in hist if key in m]
            ax.plot([s for s, _ in pts], [v for _, v in pts], label=name, **style)
    axes[0].set(title="greedy validation accuracy", xlabel="GRPO step", ylabel="accuracy")
    axes[1].set(title="reward std (train, all completions)", xlabel="GRPO step")
    axes[2].set(title="share of groups with zero reward std", xlabel="GRPO step", ylim=(0, 1.02))
    axes[3].set(title="KL to the warm-up model (train)", xlabel="GRPO step", yscale="log")
    axes[0].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle("grpo_arith: fixed recipes vs the heuristic search's best schedule" + (f" ({note})" if note else ""),
                 fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    if small is not None:
        small.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(small, dpi=60)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="default", choices=["default", "smoke", "gpu"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", type=int, default=None, help="search budget in steps (default: the preset's)")
    ap.add_argument("--skip-search", action="store_true", help="fixed recipes only")
    ap.add_argument("--search-override", action="append", default=[], metavar="KEY=VALUE",
                    help="extra search override, e.g. uct.k_max=5 (repeatable)")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "grpo_bench")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    ap.add_argument("--replot", action="store_true", help="redraw the figure from --out's grpo_bench.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    small = ROOT / "docs" / "figures" / "grpo_arith_bench.png" if args.preset == "default" else None
    if args.replot:
        saved = json.loads((args.out / "grpo_bench.json").read_text())
        plot(saved["fixed"], saved["search"], saved["warmup"]["val_accuracy"], args.out / "grpo_bench.png", small,
             note=" ".join(saved.get("search_overrides", [])))
        print(f"figure: {args.out / 'grpo_bench.png'}")
        return 0

    from searchmgr.tasks import make_task

    task = make_task("grpo_arith", {"preset": args.preset})
    d = task.search_defaults()
    budget = args.budget or d.budget_steps
    base = task.base_recipe()
    recipes = {
        "base": base,
        "hot lr": {**base, "lr": base["lr"] * 30},  # 30x the learning rate: KL blow-up, then collapse
        "cold": {**base, "temperature": 0.3},  # near-greedy sampling: identical completions, no reward variance
    }
    warm = json.loads((task.warm_dir() / "warmup.json").read_text())
    print(f"grpo_arith preset={args.preset}: warm-up {warm['steps']} steps, start val accuracy "
          f"{warm['val_accuracy']:.3f}; horizon {d.max_depth} x {d.segment_steps} = {d.max_depth * d.segment_steps} "
          f"steps, eval every {d.eval_every}", flush=True)
    runs = {}
    for name, recipe in recipes.items():
        runs[name] = fixed_run(task, recipe, args.seed, d.segment_steps, d.max_depth, d.eval_every)
        print(summarise(name, runs[name]), flush=True)
    search = None
    if not args.skip_search:
        search = search_run(args.preset, args.seed, budget, args.out / "search_run", args.search_override)
        print(f"heuristic search {' '.join(args.search_override)}, budget {budget} steps: used "
              f"{search['steps_used']} ({search['stop_reason']}; {search['nodes']} nodes, {search['pruned']} pruned, "
              f"wall {search['wall_s']:.0f}s, {100 * search['overhead_share']:.1f}% outside training): "
              f"best val {search['best_val']:.3f} test {search['best_test']:.3f}; its fixed path val "
              f"{search['fixed_val']:.3f} test {search['fixed_test']:.3f}", flush=True)
        for seg in search["path"]:
            r = seg["recipe"]
            print(f"  steps {seg['steps'][0]:>4}-{seg['steps'][1]:<4} val {seg['val']:.3f}  "
                  + " ".join(f"{k}={v:.3g}" for k, v in r.items()))
    args.out.mkdir(parents=True, exist_ok=True)
    fig = args.out / "grpo_bench.png"
    plot(runs, search, warm["val_accuracy"], fig, small, note=" ".join(args.search_override))
    (args.out / "grpo_bench.json").write_text(json.dumps({"preset": args.preset, "seed": args.seed, "warmup": warm,
                                                          "fixed": runs, "search": search,
                                                          "search_overrides": args.search_override}, indent=1, default=str))
    print(f"figure: {fig}" + (f" (small copy {small})" if small else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
