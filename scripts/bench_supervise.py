"""Benchmarks of ``searchmgr supervise`` (not tests).

``latency``: what a slow endpoint costs a live run. The same supervised `toy` run twice
(or more, alternating): once with no manager (``interval=0``: the base recipe, trained
boundary by boundary) and once with the ``openai`` manager against the tests' fake
chat-completions server answering after ``--delay`` seconds (3 s by default; admissible
moves read from the prompt). Requests run on a worker thread, so training should never
wait; the script prints both wall times, the ratio, the time spent outside training and
what became of the answers (applied, stale, ...).

``compare``: the supervised run against the fixed recipe on one task (heuristic manager,
offline): one ``supervise ... baseline=true`` run trains the fixed recipe to the horizon
first, then the supervised chain, and the script prints, for both, the final and best
validation score (with the step of the best) and the step where each first reached the
fixed recipe's best (``--no-baseline``: the supervised run alone, with its curve).

    .venv/bin/python scripts/bench_supervise.py latency
    .venv/bin/python scripts/bench_supervise.py compare task=tinystories_overfit preset=cpu \\
        data=../shared/data/tinystories_sample.txt interval=50
    .venv/bin/python scripts/bench_supervise.py compare task=arm_scared interval=5

Wall-clock numbers depend on what else the machine runs; the script uses one torch thread.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fake_openai_server import FakeOpenAI, surface_reading_answers  # noqa: E402

from searchmgr import tree as T  # noqa: E402
from searchmgr.store import TreeStore  # noqa: E402
from searchmgr.supervise import supervise  # noqa: E402
from searchmgr.tasks import task_class  # noqa: E402


def latency_once(args: argparse.Namespace, managed: bool, out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    words = ["task=toy", f"width={args.width}", f"n_train={args.n_train}", f"segment_steps={args.steps // 3}",
             "max_depth=3", f"eval_every={args.eval_every}", f"seed={args.seed}", f"out={out}"]
    if not managed:
        outcome = supervise([*words, "interval=0"])
        return {"managed": False, "wall_s": outcome.wall_s, "train_s": outcome.train_s, "requests": 0,
                "verdicts": {}, "applied": 0}
    with FakeOpenAI(default=surface_reading_answers(), delay=args.delay) as srv:
        outcome = supervise([*words, f"interval={args.interval}", "manager.name=openai",
                             f"manager.base_url={srv.base_url}", "manager.timeout_s=60"])
    return {"managed": True, "wall_s": outcome.wall_s, "train_s": outcome.train_s, "requests": len(srv.requests),
            "verdicts": outcome.verdicts, "applied": outcome.applied}


def cmd_latency(args: argparse.Namespace) -> None:
    runs: dict[bool, list[dict]] = {False: [], True: []}
    for r in range(args.repeats):
        for managed in ((False, True) if r % 2 == 0 else (True, False)):
            res = latency_once(args, managed, args.out / f"{'managed' if managed else 'plain'}-{r}")
            runs[managed].append(res)
            print(f"{'openai, ' + format(args.delay, 'g') + ' s' if managed else 'no manager':>14}: "
                  f"wall {res['wall_s']:6.1f}s  training {res['train_s']:6.1f}s  outside training "
                  f"{res['wall_s'] - res['train_s']:5.2f}s  requests {res['requests']}  answers {res['verdicts']}  "
                  f"applied {res['applied']}", flush=True)

    def mean(managed: bool, key: str) -> float:
        return statistics.mean(r[key] for r in runs[managed])

    plain, slow = mean(False, "wall_s"), mean(True, "wall_s")
    outside_plain = plain - mean(False, "train_s")
    outside_slow = slow - mean(True, "train_s")
    # at equal training speed (the machine's load varies between runs) the endpoint costs only the time outside
    # training: compare both walls on the plain run's training time
    equal = (mean(False, "train_s") + outside_slow) / (mean(False, "train_s") + outside_plain)
    summary = {"delay_s": args.delay, "wall_s_no_manager": plain, "wall_s_managed": slow, "ratio": slow / plain,
               "outside_training_s_no_manager": outside_plain, "outside_training_s_managed": outside_slow,
               "ratio_at_equal_training_speed": equal, "runs": {str(k): v for k, v in runs.items()}}
    print(f"\nwall: no manager {plain:.1f}s, {args.delay:g}s endpoint {slow:.1f}s, ratio {slow / plain:.3f}")
    print(f"outside training: {outside_plain:.2f}s vs {outside_slow:.2f}s; ratio at equal training speed "
          f"{equal:.3f} ({100 * (equal - 1):+.1f}% wall time for a {args.delay:g}s endpoint)")
    write(args.out / "latency.json", summary)


def first_reaching(curve: list[tuple[int, float]], target: float, better) -> int | None:
    return next((s for s, v in curve if not better(target, v)), None)


def cmd_compare(args: argparse.Namespace) -> None:
    words = [w for w in args.words if not w.startswith("out=")]
    task = next(w.split("=", 1)[1] for w in words if w.startswith("task="))
    out = args.out / "_".join(w.replace("/", "_").replace("=", "-") for w in words if not w.startswith("data="))
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    outcome = supervise([*words, f"baseline={'true' if args.baseline else 'false'}", f"out={out}"])
    objective = task_class(task).objective
    with TreeStore(out / "tree.db") as store:
        nodes = store.nodes(store.search()["id"])

        def curve(path):
            return [(s, m[objective.metric]) for n in path for s, m in store.metrics(n.id) if objective.metric in m]

        fixed = curve(T.fixed_path(nodes)[1:])
        managed = curve(list(outcome.chain))

    def better(a: float, b: float) -> bool:
        return objective.utility(a) > objective.utility(b)

    def describe(c: list[tuple[int, float]]) -> dict:
        best = max(c, key=lambda sv: objective.utility(sv[1]))
        return {"final": c[-1][1], "best": best[1], "best_step": best[0]}

    m = describe(managed)
    f = describe(fixed) if fixed else None
    if f is not None:
        f["reached_fixed_best_at"] = f["best_step"]
        m["reached_fixed_best_at"] = first_reaching(managed, f["best"], better)
    summary = {"words": words, "metric": objective.metric, "fixed": f, "supervised": m,
               "decisions": outcome.verdicts, "applied": outcome.applied,
               "recipes": [{"steps": [n.start_step, n.end_step], "recipe": n.recipe} for n in outcome.chain],
               "wall_s": time.perf_counter() - t0, "run": str(out)}
    print(f"\n{task} ({objective.metric}, {objective.direction.value}):")
    for name, r in (("fixed recipe", f), ("supervised", m)):
        if r is not None:
            print(f"  {name:>12}: final {r['final']:.4g}, best {r['best']:.4g} at step {r['best_step']}"
                  + (f", reached the fixed recipe's best at step {r['reached_fixed_best_at']}" if f else ""))
    print("  curve: " + ", ".join(f"{s}: {v:.3g}" for s, v in managed))
    print(f"  decisions {outcome.verdicts}, {outcome.applied} applied; wall {summary['wall_s']:.0f}s")
    write(out / "compare.json", summary)
    plot(out / "compare.png", task, objective.metric, fixed, managed, outcome.chain)


def plot(path: Path, task: str, metric: str, fixed: list, managed: list, chain) -> None:
    """Validation against steps, fixed recipe and supervised run, with the steps where decisions were applied."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    if fixed:
        ax.plot(*zip(*fixed), color="0.5", label="fixed recipe")
    ax.plot(*zip(*managed), color="C0", label="supervised")
    for i, n in enumerate(list(chain)[1:]):
        ax.axvline(n.start_step, color="C0", alpha=0.25, lw=1, label="decision applied" if i == 0 else None)
    ax.set(xlabel="step", ylabel=metric, title=f"searchmgr supervise: {task}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"wrote {path}")


def write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))
    print(f"wrote {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    lat = sub.add_parser("latency", help="a slow endpoint against no manager")
    lat.add_argument("--delay", type=float, default=3.0, help="seconds the endpoint takes per answer")
    lat.add_argument("--width", type=int, default=256, help="hidden width of the toy MLP")
    lat.add_argument("--n-train", type=int, default=2048, help="training samples of the toy task")
    lat.add_argument("--steps", type=int, default=600, help="the run's horizon (3 segments)")
    lat.add_argument("--eval-every", type=int, default=25, help="steps between boundaries")
    lat.add_argument("--interval", type=int, default=100, help="steps between requests")
    lat.add_argument("--repeats", type=int, default=2, help="pairs of runs (order alternates)")
    lat.add_argument("--seed", type=int, default=0)
    lat.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_supervise")
    lat.set_defaults(fn=cmd_latency)
    cmp_ = sub.add_parser("compare", help="supervised vs fixed recipe on one task (heuristic manager)")
    cmp_.add_argument("words", nargs="+", metavar="KEY=VALUE", help="supervise settings: task=... interval=...")
    cmp_.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_supervise")
    cmp_.add_argument("--no-baseline", dest="baseline", action="store_false",
                      help="skip training the fixed recipe (half the time; nothing to compare within the run)")
    cmp_.set_defaults(fn=cmd_compare)
    args = p.parse_args()

    import torch

    torch.set_num_threads(1)
    args.fn(args)


if __name__ == "__main__":
    main()
