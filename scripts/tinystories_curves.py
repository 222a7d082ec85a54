"""Fixed-recipe curves of the TinyStories tasks (a benchmark script, not a test).

Trains one recipe over the full schedule horizon of a preset, segment by segment
exactly as the all-hold path of a search does (each segment resumes from the
previous checkpoint), prints a table of step, train/loss and val/loss (and the
dialogue metrics for tinystories_aux), and writes the curve as JSON. ``plot``
draws one or more such curves.

    python scripts/tinystories_curves.py run --task tinystories_overfit --data ../shared/data/tinystories_sample.txt \
        --out reports/tinystories/fixed.json
    python scripts/tinystories_curves.py run --recipe dropout=0.1 --out reports/tinystories/dropout.json
    python scripts/tinystories_curves.py plot reports/tinystories/fixed.json reports/tinystories/dropout.json \
        -o docs/figures/tinystories_overfit.png
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from searchmgr.tasks import make_task
from searchmgr.tasks.base import Segment


def run(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    options = {"preset": args.preset, "data": args.data}
    options |= dict(kv.split("=", 1) for kv in args.option)
    task = make_task(args.task, {k: v for k, v in options.items() if v is not None})
    info = task.info()
    print(json.dumps(info), flush=True)
    recipe = task.base_recipe() | {k: float(v) for k, v in (kv.split("=", 1) for kv in args.recipe)}
    recipe = task.surface.check(recipe)
    sd = task.search_defaults()
    depth = args.depth or sd.max_depth
    horizon = sd.segment_steps * sd.max_depth
    eval_every = args.eval_every or sd.eval_every
    rows: list[dict] = []
    t0 = time.time()
    dialogue = args.task == "tinystories_aux"
    print(f"recipe {recipe}  horizon {horizon}  segments {depth} x {sd.segment_steps}")
    header = f"{'step':>6} {'train/loss':>10} {'val/loss':>9}" + (f" {'val/dlg_loss':>12} {'val/dlg_acc':>11}" if dialogue else "")
    print(header)

    def on_eval(step: int, metrics: dict) -> bool:
        rows.append({"step": step, "wall_s": time.time() - t0, **metrics})
        line = f"{step:6d} {metrics['train/loss']:10.4f} {metrics['val/loss']:9.4f}"
        if dialogue:
            line += f" {metrics['val/dialogue_loss']:12.4f} {metrics['val/dialogue_acc']:11.3f}"
        print(line, flush=True)
        return False

    checkpoint = task.init(args.seed)
    for k in range(depth):
        seg = Segment(k * sd.segment_steps, sd.segment_steps, horizon, eval_every)
        checkpoint = task.train_segment(checkpoint, recipe, seg, on_eval).checkpoint
    wall = time.time() - t0
    best = min(rows, key=lambda r: r["val/loss"])
    final = rows[-1]
    print(f"best val/loss {best['val/loss']:.4f} at step {best['step']}; final val/loss {final['val/loss']:.4f} "
          f"test/loss {final.get('test/loss', float('nan')):.4f}; {wall:.0f} s, {wall / (depth * sd.segment_steps):.3f} s/step "
          f"(evaluations included)")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        changed = {k: v for k, v in recipe.items() if v != task.base_recipe()[k]}
        label = ", ".join(f"{k}={v:g}" for k, v in changed.items()) or "fixed recipe"
        out.write_text(json.dumps({"task": args.task, "info": info, "recipe": recipe, "label": label, "horizon": horizon,
                                   "wall_s": wall, "threads": torch.get_num_threads(), "rows": rows}, indent=1))


def plot(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [json.loads(Path(p).read_text()) for p in args.curves]
    dialogue = any("val/dialogue_acc" in c["rows"][0] for c in curves)
    fig, ax = plt.subplots(figsize=(6.4, 4.4 if dialogue else 3.8), dpi=110)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (c, colour) in enumerate(zip(curves, colours)):
        steps = [r["step"] for r in c["rows"]]
        label = args.labels[i] if args.labels else c.get("label", "fixed recipe")
        ax.plot(steps, [r["train/loss"] for r in c["rows"]], "--", color=colour, label=f"train ({label})")
        ax.plot(steps, [r["val/loss"] for r in c["rows"]], "-", color=colour, label=f"val ({label})")
        best = min(c["rows"], key=lambda r: r["val/loss"])
        ax.plot([best["step"]], [best["val/loss"]], "o", color=colour, ms=4)
    ax.set_xlabel("step")
    ax.set_ylabel("LM loss (nats/token)")
    ax.grid(alpha=0.3)
    if dialogue:
        ax2 = ax.twinx()
        for c, colour in zip(curves, colours):
            rows = [r for r in c["rows"] if "val/dialogue_acc" in r]
            ax2.plot([r["step"] for r in rows], [r["val/dialogue_acc"] for r in rows], ":", color=colour, lw=2,
                     label="val dialogue acc")
            ax2.plot([r["step"] for r in rows], [r["train/dialogue_loss"] for r in rows], "-.", color=colour,
                     alpha=0.6, label="train dialogue loss")
        ax2.set_ylabel("dialogue accuracy / loss")
        ax2.set_ylim(0, 1.02)
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    else:
        ax.legend(fontsize=7)
    source = curves[0]["info"]["data_source"].split("/")[-1]
    ax.set_title(args.title or f"{curves[0]['task']} ({curves[0]['info']['preset']} preset, {source})", fontsize=9)
    if args.ylim:
        ax.set_ylim(*args.ylim)
    fig.tight_layout()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output)
    print(f"wrote {args.output}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train one recipe over the full horizon")
    r.add_argument("--task", default="tinystories_overfit", choices=["tinystories_overfit", "tinystories_aux"])
    r.add_argument("--preset", default=None)
    r.add_argument("--data", default=None, help="a stories file, 'hub' or 'generator' (default: task default)")
    r.add_argument("--recipe", nargs="*", default=[], help="knob=value overrides of the base recipe")
    r.add_argument("--option", nargs="*", default=[], help="task option=value overrides")
    r.add_argument("--depth", type=int, default=None, help="segments to train (default: the preset's max_depth)")
    r.add_argument("--eval-every", type=int, default=None)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--out", default=None, help="write the curve as JSON here")
    p = sub.add_parser("plot", help="plot curves written by run")
    p.add_argument("curves", nargs="+")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--title", default=None)
    p.add_argument("--ylim", type=float, nargs=2, default=None)
    p.add_argument("--labels", nargs="*", default=None, help="one legend label per curve")
    args = ap.parse_args()
    run(args) if args.cmd == "run" else plot(args)


if __name__ == "__main__":
    main()
