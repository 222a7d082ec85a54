"""Benchmark: what an endpoint's latency costs a search when the coordinator asks ahead.

Runs the same `toy` search twice (or more, alternating) with the `openai` manager
against the local fake chat-completions server of the tests: once answering at once,
once answering after ``--delay`` seconds (3 s by default). Segments are made longer
than the delay (a wider MLP on more samples, ``--segment-steps``) and the stopper is
off, so both searches train the same number of equal segments; the difference in wall
time is what the latency costs. Prints both wall times, the ratio, and the seconds the
training loop actually waited for proposals (``propose_s``).

    .venv/bin/python scripts/bench_latency.py                     # 3 s vs 0 s, one worker process, asked ahead
    .venv/bin/python scripts/bench_latency.py --executor inline   # training waits for every answer

With ``executor.name=process`` the coordinator plans and asks the manager for the next
node while the worker trains the current one (``executor.ahead``, one per worker for
slow managers); the planned node counts as an unobserved visit (WU-UCT), so it is
planned without the telemetry of the segment still training.

Run it on an idle machine: the numbers are wall-clock times. Machines shared with
other work change speed between runs; the script also prints the ratio at equal
training speed (latency cost measured outside training only).
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

from searchmgr.config import build_config, parse_overrides  # noqa: E402
from searchmgr.search import create_run  # noqa: E402


def run_once(args: argparse.Namespace, delay: float, out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    with FakeOpenAI(default=surface_reading_answers(), delay=delay) as srv:
        words = [
            "task=toy", f"width={args.width}", f"n_train={args.n_train}", f"segment_steps={args.segment_steps}",
            f"eval_every={args.segment_steps // 4}", f"max_depth={args.depth}",
            f"budget.steps={args.segment_steps * args.nodes}", 'stopper.name="none"', "manager.name=openai",
            f"manager.base_url={srv.base_url}", f"executor.name={args.executor}", "threads=1",
            f"seed={args.seed}", f"out={out}",
        ]
        search = create_run(build_config(parse_overrides(words)))
        try:
            outcome = search.run()
        finally:
            search.close()
    return {"delay_s": delay, "wall_s": outcome.wall_s, "train_s": outcome.train_s, "propose_s": search.propose_s,
            "nodes": outcome.nodes_trained, "requests": len(srv.requests), "ahead": search.ahead}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--delay", type=float, default=3.0, help="seconds the slow endpoint takes per answer")
    p.add_argument("--width", type=int, default=256, help="hidden width of the toy MLP")
    p.add_argument("--n-train", type=int, default=2048, help="training samples of the toy task")
    p.add_argument("--segment-steps", type=int, default=200, help="steps per segment")
    p.add_argument("--depth", type=int, default=3, help="max_depth (segments per schedule)")
    p.add_argument("--nodes", type=int, default=12, help="segments the budget pays for")
    p.add_argument("--repeats", type=int, default=1, help="pairs of runs (order alternates)")
    p.add_argument("--executor", choices=["inline", "process"], default="process",
                   help="process: one worker process trains while the coordinator asks the LLM ahead; inline: "
                   "training waits for every answer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_latency")
    args = p.parse_args()

    import torch

    torch.set_num_threads(1)
    results: dict[float, list[dict]] = {0.0: [], args.delay: []}
    for r in range(args.repeats):
        order = (0.0, args.delay) if r % 2 == 0 else (args.delay, 0.0)
        for delay in order:
            t0 = time.perf_counter()
            res = run_once(args, delay, args.out / f"delay{delay:g}-{r}")
            results[delay].append(res)
            print(f"delay {delay:>4g}s: wall {res['wall_s']:7.1f}s  training {res['train_s']:7.1f}s  "
                  f"waited for proposals {res['propose_s']:6.2f}s  nodes {res['nodes']}  "
                  f"requests {res['requests']}  asked ahead {res['ahead']}  (total {time.perf_counter() - t0:.0f}s)",
                  flush=True)
    def mean(delay: float, key: str) -> float:
        return statistics.mean(r[key] for r in results[delay])

    fast, slow = mean(0.0, "wall_s"), mean(args.delay, "wall_s")
    train_fast, train_slow = mean(0.0, "train_s"), mean(args.delay, "train_s")
    wait_fast, wait_slow = mean(0.0, "propose_s"), mean(args.delay, "propose_s")
    # at equal training speed (a shared machine's load varies from run to run), the latency costs only the time
    # spent outside training: compare the walls with the zero-latency run's training time in both
    outside_fast, outside_slow = fast - train_fast, slow - train_slow
    equal_speed_ratio = (train_fast + outside_slow) / (train_fast + outside_fast)
    summary = {"delay_s": args.delay, "executor": args.executor, "wall_s_zero_latency": fast, "wall_s_slow": slow,
               "ratio": slow / fast, "train_s_zero_latency": train_fast, "train_s_slow": train_slow,
               "outside_training_s_zero_latency": outside_fast, "outside_training_s_slow": outside_slow,
               "ratio_at_equal_training_speed": equal_speed_ratio,
               "waited_s_zero_latency": wait_fast, "waited_s_slow": wait_slow, "runs": results}
    print(f"\nwall: zero latency {fast:.1f}s, {args.delay:g}s latency {slow:.1f}s, ratio {slow / fast:.3f} "
          f"(training alone took {train_fast:.1f}s vs {train_slow:.1f}s: the machine's speed varied)")
    print(f"outside training: {outside_fast:.2f}s vs {outside_slow:.2f}s, of which waiting for proposals "
          f"{wait_fast:.2f}s vs {wait_slow:.2f}s")
    print(f"ratio at equal training speed: {equal_speed_ratio:.3f} ({100 * (equal_speed_ratio - 1):+.1f}% wall time "
          f"for a {args.delay:g}s endpoint)")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {args.out / 'summary.json'}")


if __name__ == "__main__":
    main()
