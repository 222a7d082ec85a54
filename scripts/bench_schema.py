"""Benchmark: how many answers of a real endpoint are admissible, with the generic or the per-request schema.

For each task, runs the same short search three times: with the ``openai`` manager sending
the generic decision schema, with it sending the per-request schema
(``manager.response_schema=request``, the default), and with the offline ``heuristic``
manager. Prints per LLM run the answers by the verifier's verdict (stale prefetched answers
counted by what the verifier had said), the rejection kinds, the latency, which manager
made the nodes (the heuristic fallback decides when three attempts were rejected) and the
search outcome beside the heuristic's.

    python -m llama_cpp.server --model SmolLM2.gguf --port 8080 &
    .venv/bin/python scripts/bench_schema.py --base-url http://127.0.0.1:8080/v1 --tasks toy,tinystories_overfit \
        executor.ahead=0 manager.max_tokens=512

Keep it small on a shared CPU: smoke presets, their default budgets (or ``budget.steps=``), and no proposals asked
ahead (``executor.ahead=0``: one request at a time, no speculative ones). Extra ``key=value`` words
apply to every run.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections import Counter
from pathlib import Path

from searchmgr.search import explore
from searchmgr.store import TreeStore
from searchmgr.traces import manager_stats

ROOT = Path(__file__).resolve().parents[1]


def run(task: str, manager: list[str], out: Path, extra: list[str]) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    outcome = explore([f"task={task}", "preset=smoke", f"out={out}", *manager, *extra])
    with TreeStore(out / "tree.db") as store:
        sid = store.search()["id"]
        stats = manager_stats(store, sid, "openai")
        sources = Counter(n.source for n in store.nodes(sid) if n.depth > 0)
    v, stale = stats["verdicts"], stats["stale"]
    admitted = v.get("accepted", 0) + stale.get("admitted", 0)
    answered = admitted + v.get("rejected", 0) + stale.get("rejected", 0)
    return {"best": outcome.best.val_score if outcome.best else None,
            "best_test": outcome.best.test_score if outcome.best else None,
            "fixed": outcome.fixed.val_score if outcome.fixed else None, "wall_s": outcome.wall_s,
            "nodes_by_source": dict(sources), "answered": answered, "admitted": admitted,
            "admissible_rate": admitted / answered if answered else None, "stats": stats}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-url", required=True, help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1")
    p.add_argument("--model", default="local", help="model name sent to the endpoint")
    p.add_argument("--tasks", default="toy", help="comma-separated tasks (smoke presets)")
    p.add_argument("--schemas", default="generic,request", help="response schemas to compare")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_schema")
    p.add_argument("words", nargs="*", metavar="KEY=VALUE", help="overrides for every run (budget.steps=...)")
    args = p.parse_args()

    import torch

    torch.set_num_threads(1)
    llm = ["manager.name=openai", f"manager.base_url={args.base_url}", f"manager.model={args.model}",
           "manager.timeout_s=300", "manager.max_retries=1", "manager.temperature=0.2"]
    results: dict = {}
    for task in [t.strip() for t in args.tasks.split(",") if t.strip()]:
        extra = [f"seed={args.seed}", *(w for w in args.words if not w.startswith("manager."))]
        results[task] = {"heuristic": run(task, [], args.out / task / "heuristic", extra)}
        for schema in args.schemas.split(","):
            r = run(task, [*llm, f"manager.response_schema={schema}", *(w for w in args.words if w.startswith("manager."))],
                    args.out / task / schema, extra)
            results[task][schema] = r
            s = r["stats"]
            print(f"{task} {schema:>8}: {r['admitted']}/{r['answered']} admissible "
                  f"({100 * (r['admissible_rate'] or 0):.0f}%), rejections {s['rejections']}, errors "
                  f"{s['verdicts'].get('error', 0)}, latency {json.dumps(s['latency_s'])}, tokens "
                  f"{s['prompt_tokens']} in / {s['completion_tokens']} out; nodes {r['nodes_by_source']}; "
                  f"best {r['best']:.4g} (test {r['best_test']:.4g}), fixed {r['fixed']:.4g}", flush=True)
        h = results[task]["heuristic"]
        print(f"{task} heuristic: best {h['best']:.4g} (test {h['best_test']:.4g}), fixed {h['fixed']:.4g}; "
              f"nodes {h['nodes_by_source']}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {args.out / 'summary.json'}")


if __name__ == "__main__":
    main()
