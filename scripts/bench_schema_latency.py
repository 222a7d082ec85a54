"""Benchmark: what each response schema costs in latency on a real endpoint (not a test).

Sends the same toy proposal request (the test suite's overfitting context) with the
generic decision schema, the per-request schema, and the per-request schema for a parent
with two children (its ``anyOf`` of sibling-free alternatives), interleaved, ``--repeats``
times each, and prints the median latency, the completion tokens and how many answers
the verifier admitted. Interleaving spreads the machine's load evenly over the three.

    python -m llama_cpp.server --model SmolLM2.gguf --port 8080 &
    .venv/bin/python scripts/bench_schema_latency.py --base-url http://127.0.0.1:8080/v1 --model smollm2
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "managers"))

from manager_contexts import make_context  # noqa: E402

from searchmgr.decision import verify  # noqa: E402
from searchmgr.managers.llm import LLMManager  # noqa: E402
from searchmgr.managers.openai_backend import BackendSettings  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-url", required=True)
    p.add_argument("--model", default="local")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    settings = BackendSettings(base_url=args.base_url, model=args.model, timeout_s=600, max_retries=0, backoff_s=0,
                               temperature=0.2, max_tokens=512)
    plain = make_context("toy")
    parent = dict(plain.parent_recipe)
    held, step = parent, {**parent, "dropout": parent["dropout"] + 0.05}  # the parent held; one dropout step
    cases = {"generic": (LLMManager(settings, response_schema="generic"), plain),
             "request": (LLMManager(settings), plain),
             "request, 2 siblings": (LLMManager(settings), make_context("toy", siblings=(held, step)))}
    stats: dict[str, dict[str, list]] = {name: {"latency": [], "tokens": [], "ok": []} for name in cases}
    for i in range(args.repeats):
        for name, (manager, ctx) in cases.items():
            proposal = manager.propose(ctx)
            v = verify(proposal.raw, ctx.surface, ctx.parent_recipe, [s.recipe for s in ctx.siblings])
            stats[name]["latency"].append(proposal.latency_s)
            stats[name]["tokens"].append(proposal.completion_tokens or 0)
            stats[name]["ok"].append(v.ok)
            print(f"[{i + 1}/{args.repeats}] {name}: {proposal.latency_s:.1f}s, "
                  f"{proposal.completion_tokens} tokens, {'admitted' if v.ok else v.rejection.kind.value}", flush=True)
    print("\nschema | median latency s | median completion tokens | admitted")
    for name, s in stats.items():
        print(f"{name} | {statistics.median(s['latency']):.1f} | {statistics.median(s['tokens']):.0f} | "
              f"{sum(s['ok'])}/{len(s['ok'])}")


if __name__ == "__main__":
    main()
