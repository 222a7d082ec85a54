"""Does an LLM choosing among the model's ranked candidates help? (issue 29)

    .venv/bin/python scripts/bench_llm_chooser.py --base-url http://127.0.0.1:8080/v1 --model smollm2 \
        [--tasks toy,grpo_arith,tinystories_overfit] [--seeds 3] [--methods M1,M2] [--out runs/llm_chooser] \
        [WORD=VALUE ...]
    .venv/bin/python scripts/bench_llm_chooser.py --summary-only --out runs/llm_chooser

Per task, one ``searchmgr compare`` (resumed when its folder already holds one) of four methods at the same
budget and seeds: ``tree:model`` (the model alone), ``tree:model_llm`` (the LLM at the endpoint picks one of the
model's top ``manager.top_k``), ``tree:model_random`` (a seeded uniform pick among the same top k: the control),
and ``tree`` (the heuristic manager). ``executor.ahead=0`` for all four, so every proposal sees the same evidence
whatever the endpoint's latency. toy and grpo_arith run at their default presets; tinystories_overfit reduced
(``segment_steps=40 eval_every=20 budget.steps=1200`` on ``../shared/data/tinystories_sample.txt``, as in
docs/benchmarks.md). Extra ``WORD=VALUE`` arguments go to every comparison (e.g. ``uct.start=bounded``).

Prints (and writes to OUT/summary.md) per task: mean ± se of the best validation score and its test score over
seeds; for the two choosers the number of choices made, the share that agree with the model's own top choice
(``model_rank == 1``), invalid answers, prior fallbacks and the median latency per request; and the paired
difference LLM − random per seed, oriented so that positive means the LLM chooser is better.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

TASKS = {
    "toy": ["task=toy"],
    "grpo_arith": ["task=grpo_arith"],
    "tinystories_overfit": ["task=tinystories_overfit", "data=../shared/data/tinystories_sample.txt",
                            "segment_steps=40", "eval_every=20", "budget.steps=1200"],
}
METHODS = ("tree:model", "tree:model_llm", "tree:model_random", "tree")
CHOOSERS = ("tree:model_llm", "tree:model_random")


def mean_se(xs: list[float]) -> str:
    if not xs:
        return "-"
    m = statistics.fmean(xs)
    se = statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else math.nan
    return f"{m:.4g} ± {se:.2g}"


def chooser_stats(run: Path) -> dict:
    """What a chooser did in one run, from its manager decisions' traces."""
    from searchmgr.store import DecisionKind, TreeStore

    with TreeStore(run / "tree.db") as store:
        ds = store.decisions(store.search()["id"], kind=DecisionKind.MANAGER)
    ranks, invalid, fallback, latency = [], 0, 0, []
    for d in ds:
        chooser = (d.context or {}).get("chooser")
        if chooser is None:
            continue
        if chooser.get("fallback"):
            fallback += 1
            continue
        if d.latency_s is not None:
            latency.append(d.latency_s)
        if not chooser.get("valid"):
            invalid += 1
        elif d.applied:
            ranks.append(chooser.get("model_rank"))  # None: its own change (manager.own=true)
    return {"ranks": ranks, "invalid": invalid, "fallback": fallback, "latency": latency}


def summary(folder: Path) -> str:
    d = json.loads((folder / "compare.json").read_text())
    sign = 1 if d["objective"]["direction"] == "maximize" else -1
    arrow = "higher" if sign > 0 else "lower"
    lines = [f"### {d['task']} (budget {d['budget_steps']} steps, {d['objective']['metric']}, {arrow} is better)", "",
             "| method | best val | its test | choices | agree with model's top | invalid answers | prior fallbacks "
             "| median latency s | seeds |", "|---|---|---|---|---|---|---|---|---|"]
    by_seed: dict[str, dict[int, float]] = {}
    for key in [m for m in METHODS if m in d["methods"]] + [m for m in d["methods"] if m not in METHODS]:
        rows = d["methods"][key]["seeds"]
        by_seed[key] = {r["seed"]: r["best_val"] for r in rows if r["best_val"] is not None}
        vals = [r["best_val"] for r in rows if r["best_val"] is not None]
        tests = [r["test"] for r in rows if r["test"] is not None]
        extra = ["", "", "", "", ""]
        if key in CHOOSERS:
            stats = [chooser_stats(Path(r["run"])) for r in rows]
            ranks = [x for s in stats for x in s["ranks"]]
            latency = [x for s in stats for x in s["latency"]]
            agree = sum(r == 1 for r in ranks)
            extra = [str(len(ranks)), f"{agree}/{len(ranks)} ({agree / len(ranks):.0%})" if ranks else "-",
                     str(sum(s["invalid"] for s in stats)), str(sum(s["fallback"] for s in stats)),
                     f"{statistics.median(latency):.1f}" if latency else "-"]
        lines.append(f"| {key} | {mean_se(vals)} | {mean_se(tests)} | " + " | ".join(extra) + f" | {len(rows)} |")
    llm, rnd = by_seed.get("tree:model_llm", {}), by_seed.get("tree:model_random", {})
    both = sorted(set(llm) & set(rnd))
    if both:
        diffs = [sign * (llm[s] - rnd[s]) for s in both]
        lines += ["", f"LLM − random chooser, paired by seed (positive: the LLM is better): {mean_se(diffs)} "
                  f"(per seed {', '.join(f'{x:+.4g}' for x in diffs)})"]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base-url", help="the OpenAI-compatible endpoint of the LLM chooser")
    ap.add_argument("--model", default="smollm2", help="model name sent to the endpoint")
    ap.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated, of {sorted(TASKS)}")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--methods", default=",".join(METHODS), help="a subset to run now (a resumed comparison adds "
                    "the others later; the endpoint words are stored with the first run)")
    ap.add_argument("--out", default="runs/llm_chooser")
    ap.add_argument("--summary-only", action="store_true", help="only summarise the comparisons already in OUT")
    ap.add_argument("words", nargs="*", help="extra WORD=VALUE overrides for every comparison")
    args = ap.parse_args()
    from searchmgr.compare import compare

    out, parts = Path(args.out), []
    for task in [t.strip() for t in args.tasks.split(",") if t.strip()]:
        if task not in TASKS:
            raise SystemExit(f"unknown task {task!r}; choose among {sorted(TASKS)}")
        folder = out / task
        if not args.summary_only:
            if (folder / "compare.json").exists():
                compare([f"seeds={args.seeds}", f"methods={args.methods}"], resume=folder)
            else:
                if not args.base_url:
                    raise SystemExit("--base-url is needed to run tree:model_llm (e.g. http://127.0.0.1:8080/v1)")
                compare([*TASKS[task], f"methods={args.methods}", f"seeds={args.seeds}", "threads=1",
                         "executor.ahead=0", f"manager.base_url={args.base_url}", f"manager.model={args.model}",
                         "manager.timeout_s=300", "manager.max_tokens=256", f"out={folder}", *args.words])
        if (folder / "compare.json").exists():
            parts.append(summary(folder))
    text = "\n".join(parts)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
