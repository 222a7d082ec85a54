"""The TinyStories stress test at CPU size (a benchmark script, not a test).

Runs the README's main job exactly as a user would (``searchmgr explore
task=tinystories_overfit``, plus any ``key=value`` words given here) in a child
process with ``--threads`` torch threads, times it (wall and CPU seconds; on a busy
machine both overstate the time alone, the CPU time far less), then reads
the run and prints, for the search's best schedule and for the fixed recipe, the best
validation loss along the schedule, the final one (at the horizon, which is what the
search optimises), their ratio and the final test loss. Draws the figure: validation
(and training) loss of both schedules and the best schedule's dropout and weight decay.

    .venv/bin/python scripts/bench_stress.py --run runs/stress                    # run (or reuse) and draw
    .venv/bin/python scripts/bench_stress.py --run runs/stress data=../shared/data/tinystories_sample.txt
    .venv/bin/python scripts/bench_stress.py --run runs/stress --redraw           # only redraw an existing run

The run directory keeps ``stress.json`` (the timing and the numbers printed), so a
redraw shows the timing of the run that made it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from searchmgr.analysis.run import RunData, load_run
from searchmgr.analysis.trajectories import curve, segments, step_function
from searchmgr.store import NodeStatus

FIGURE = Path(__file__).resolve().parents[1] / "docs" / "figures" / "tinystories_stress.png"
SEARCHMGR = Path(sys.executable).with_name("searchmgr")


def run_job(run_dir: Path, words: list[str], threads: int) -> dict:
    """``searchmgr explore task=tinystories_overfit out=run_dir *words`` in a child process; its wall and CPU time."""
    cmd = [str(SEARCHMGR), "explore", "task=tinystories_overfit", f"out={run_dir}", *words]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    print(f"$ OMP_NUM_THREADS={threads} searchmgr {' '.join(cmd[1:])}", flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    returncode = subprocess.run(cmd, env=env).returncode
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if returncode:
        print(f"the job exited with status {returncode}: what it stored is reported below as a partial run "
              f"(continue it with `searchmgr explore --resume {run_dir}`)", file=sys.stderr)
    return {"command": "searchmgr " + " ".join(cmd[1:]), "threads": threads, "wall_s": wall, "cpu_s": cpu,
            "returncode": returncode, "load_avg_after": os.getloadavg()}


def schedule_numbers(run: RunData, path: list) -> dict:
    """Best and final validation loss along ``path`` (root first), its final test loss and its recipes."""
    val = curve(run, path, run.objective.metric)
    if not val.steps:
        raise SystemExit(f"{run.run_dir}: the path has no evaluations yet; let the run finish first")
    i_best = min(range(len(val.values)), key=val.values.__getitem__)
    leaf = path[-1]
    return {"best_val": val.values[i_best], "best_step": val.steps[i_best], "final_val": val.values[-1],
            "final_step": val.steps[-1], "final_over_best": val.values[-1] / val.values[i_best],
            "final_test": leaf.test_score, "node": leaf.id, "complete": leaf.depth == run.max_depth,
            "recipes": [dict(n.recipe) for n in segments(path)]}


def summarise(run: RunData) -> dict:
    nodes = [n for n in run.nodes if n.depth > 0]
    train_s = sum(n.train_s or 0.0 for n in nodes)
    return {
        "data_source": run.info.get("data_source"), "train_stories": run.info.get("train_stories"),
        "steps_used": run.steps_used(), "budget_steps": run.config["budget"]["steps"],
        "horizon": run.config["segment_steps"] * run.max_depth, "nodes": len(nodes),
        "pruned": sum(n.status is NodeStatus.PRUNED for n in nodes), "train_s": train_s,
        "train_steps_per_s": run.steps_used() / train_s if train_s else None,
        "fixed": schedule_numbers(run, run.fixed_path()), "best": schedule_numbers(run, run.best_path()),
    }


def report(s: dict) -> None:
    t = s.get("timing")
    if t:
        print(f"\n{t['command']}  (OMP_NUM_THREADS={t['threads']})")
        print(f"wall {t['wall_s'] / 60:.1f} min, CPU {t['cpu_s'] / 60:.1f} min, "
              f"load average after {', '.join(f'{x:.1f}' for x in t['load_avg_after'])}"
              + (f"; exited with status {t['returncode']} (partial run)" if t.get("returncode") else ""))
    rate = f"{s['train_steps_per_s']:.1f}" if s["train_steps_per_s"] else "?"
    print(f"data {s['data_source']} ({s['train_stories']} training stories); "
          f"{s['steps_used']}/{s['budget_steps']} steps, {s['nodes']} segments ({s['pruned']} pruned), horizon {s['horizon']}; "
          f"{s['train_s']:.0f} s in training segments ({rate} steps/s)")
    print(f"\n{'schedule':<10}{'best val':>10}{'at step':>9}{'final val':>11}{'final/best':>12}{'final test':>12}")
    for name in ("fixed", "best"):
        r = s[name]
        print(f"{name:<10}{r['best_val']:>10.4f}{r['best_step']:>9}{r['final_val']:>11.4f}{r['final_over_best']:>12.3f}"
              f"{r['final_test']:>12.4f}")
    f, b = s["fixed"], s["best"]
    print(f"\nbest schedule's final val: x{b['final_val'] / f['final_val']:.3f} of the fixed recipe's final, "
          f"x{b['final_val'] / f['best_val']:.3f} of the fixed recipe's best")
    print("best schedule, per segment: " + "; ".join(
        ", ".join(f"{k}={v:.3g}" for k, v in r.items()) for r in b["recipes"]))


def draw(run: RunData, s: dict, output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, kx) = plt.subplots(2, 1, figsize=(7.0, 5.6), dpi=100, sharex=True, height_ratios=(3, 1.3))
    for name, path, colour in (("fixed recipe", run.fixed_path(), "tab:blue"), ("search's best", run.best_path(),
                                                                                  "tab:orange")):
        key = "fixed" if name == "fixed recipe" else "best"
        val, train = curve(run, path, "val/loss"), curve(run, path, "train/loss")
        r = s[key]
        ax.plot(train.steps, train.values, "--", color=colour, lw=1.2, alpha=0.8, label=f"train ({name})")
        ax.plot(val.steps, val.values, "-", color=colour, lw=2.0,
                label=f"val ({name}): best {r['best_val']:.3f}, final {r['final_val']:.3f} "
                      f"(x{r['final_over_best']:.2f})")
        ax.plot([r["best_step"]], [r["best_val"]], "o", color=colour, ms=6)
        ax.plot([r["final_step"]], [r["final_val"]], "s", color=colour, ms=6)
    ax.axhline(1.25 * s["fixed"]["best_val"], color="grey", ls=":", lw=1, label="1.25 x fixed recipe's best val")
    for n in segments(run.best_path()):
        ax.axvline(n.end_step, color="#dddddd", lw=0.8, zorder=0)
        kx.axvline(n.end_step, color="#dddddd", lw=0.8, zorder=0)
    ax.set_ylabel("LM loss (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="lower left")
    source = (s["data_source"] or "").split("/")[-1]
    ax.set_title(f"tinystories_overfit, {run.info.get('preset')} preset ({source}, {s['train_stories']} training "
                 "stories):\nsearch's best schedule vs fixed recipe; circles: best val, squares: final", fontsize=9)
    for knob, colour in (("dropout", "tab:green"), ("weight_decay", "tab:purple")):
        xs, ys = step_function(run.best_path(), knob)
        kx.step(xs, ys, where="post", color=colour, lw=1.8, label=f"{knob} (best schedule)")
    kx.axhline(0.0, color="tab:blue", ls="--", lw=1.2, label="dropout, weight_decay (fixed: 0)")
    kx.set_xlabel("training step")
    kx.set_ylabel("knob value")
    kx.grid(alpha=0.3)
    kx.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output)
    print(f"wrote {output}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="run directory: made by this script unless it already holds a run")
    ap.add_argument("--redraw", action="store_true", help="only read an existing run and redraw; never train")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the job (OMP_NUM_THREADS)")
    ap.add_argument("-o", "--output", type=Path, default=FIGURE, help="the figure")
    ap.add_argument("words", nargs="*", help="extra key=value settings of the job (e.g. data=PATH, seed=1)")
    args = ap.parse_args()
    run_dir = Path(args.run)
    saved = run_dir / "stress.json"
    timing = json.loads(saved.read_text()).get("timing") if saved.is_file() else None
    if not (run_dir / "tree.db").exists():
        if args.redraw:
            raise SystemExit(f"{run_dir} holds no run; drop --redraw to make one")
        timing = run_job(run_dir, args.words, args.threads)
        if not (run_dir / "tree.db").exists():
            raise SystemExit(f"the job stored nothing in {run_dir}; see its error above")
    elif args.words:
        raise SystemExit(f"{run_dir} already holds a run; settings apply only to a new run (pick another --run)")
    run = load_run(run_dir)
    s = summarise(run) | {"timing": timing}
    saved.write_text(json.dumps(s, indent=1))
    report(s)
    draw(run, s, args.output)


if __name__ == "__main__":
    main()
