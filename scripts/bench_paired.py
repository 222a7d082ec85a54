"""Paired comparison over ``searchmgr compare`` folders: every method against a reference, seed by seed.

    .venv/bin/python scripts/bench_paired.py runs/cmp/toy_2400 runs/cmp/toy_1200 --ref tree:random
    .venv/bin/python scripts/bench_paired.py runs/cmp/toy_2400 --oracle 0.391
    .venv/bin/python scripts/bench_paired.py --merge runs/a runs/b --ref a/tree:random   # one table, folder/method

For each folder prints, per method: mean ± standard error of the best complete schedule's validation score
and of its test score over seeds, the number of seeds that completed a schedule, and the paired difference
(method − reference, oriented so that positive is better) with its standard error over the seeds both
completed. With ``--oracle`` (the best score any method reached at 10x the budget), also the fraction of the
gap from the fixed recipe to the oracle that each method closes (the fixed recipe's score is read from the
runs' stores, or with ``--fixed DIR`` from another folder's runs whose fixed path reached the horizon).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def mean_se(xs: list[float]) -> tuple[float, float]:
    if not xs:
        return math.nan, math.nan
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, math.nan
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1) / len(xs))


def fixed_score(run: str) -> float | None:
    """The fixed recipe's final validation score in one run: its fixed path's, or else a chain holding the base
    recipe from the root (a constant-recipe baseline that tried it first); None when neither is complete."""
    from searchmgr import tree as T
    from searchmgr.store import TreeStore

    store = TreeStore(Path(run) / "tree.db")
    nodes = store.nodes(store.search()["id"])
    store.close()
    depth = max(n.depth for n in nodes)
    path = T.fixed_path(nodes)
    if path[-1].depth < depth:
        path = [T.root(nodes)]
        while nxt := [c for c in T.children(nodes, path[-1].id) if c.recipe == path[0].recipe]:
            path.append(nxt[0])
    return path[-1].val_score if len(path) > 1 and path[-1].depth == depth else None


def merged(folders: list[Path]) -> dict:
    """One compare.json of several folders run at the same budget and seeds. A method name that two folders share
    becomes ``folder/method`` in each; the others keep their names."""
    docs = [json.loads((f / "compare.json").read_text()) for f in folders]
    for f, d in zip(folders, docs):
        if (d["task"], d["budget_steps"]) != (docs[0]["task"], docs[0]["budget_steps"]):
            raise SystemExit(f"{f}: task or budget differs from {folders[0]}; merge only like with like")
    names = [m for d in docs for m in d["methods"]]
    shared = {m for m in names if names.count(m) > 1}
    return {**docs[0], "methods": {(f"{f.name}/{m}" if m in shared else m): v
                                   for f, d in zip(folders, docs) for m, v in d["methods"].items()}}


SEEDS: int | None = None  # --seeds N: only seeds 0..N-1 (a comparison stopped part-way through a further seed)
FIXED_FROM: str | None = None  # --fixed DIR: the compare folder whose runs' fixed paths give the fixed recipe's score


def load(spec: str | Path | list[Path]) -> dict:
    """A compare.json; ``a+b`` (or a list) merges folders."""
    folders = spec if isinstance(spec, list) else [Path(p) for p in str(spec).split("+")]
    d = merged(folders) if len(folders) > 1 else json.loads((folders[0] / "compare.json").read_text())
    if SEEDS is not None:
        d["methods"] = {m: {**v, "seeds": [s for s in v["seeds"] if s["seed"] < SEEDS]}
                        for m, v in d["methods"].items()}
    return d


def completed(d: dict) -> dict[str, dict[int, dict]]:
    """Per method, the seeds that completed a schedule."""
    return {m: {s["seed"]: s for s in v["seeds"] if s.get("complete", True) and s.get("best_val") is not None}
            for m, v in d["methods"].items()}


def resolve_ref(by_seed: dict, ref: str) -> str:
    """``ref`` itself, or the one merged method named ``folder/ref``."""
    if ref in by_seed:
        return ref
    hits = [m for m in by_seed if m.split("/")[-1] == ref]
    return hits[0] if len(hits) == 1 else ref


def is_tree(method: str) -> bool:
    return method.split("/")[-1].startswith("tree")


def deltas(a: dict[int, dict], b: dict[int, dict], key: str, sign: int) -> list[float]:
    """``a − b`` on ``key`` over the seeds both have, oriented so that positive is better."""
    return [sign * (a[k][key] - b[k][key]) for k in sorted(set(a) & set(b))]


def best_baseline(by_seed: dict[str, dict[int, dict]], key: str, sign: int) -> str | None:
    """The non-tree method with the best mean of ``key`` over its seeds (None when none has one)."""
    scored = [m for m in by_seed if not is_tree(m) and by_seed[m]]
    return max(scored, key=lambda m: sign * mean_se([s[key] for s in by_seed[m].values()])[0], default=None)


def fixed_scores(methods: dict) -> list[float]:
    """The fixed recipe's final scores: from the ``--fixed`` folder's runs, else from the first method's runs."""
    source = load(FIXED_FROM)["methods"] if FIXED_FROM else {k: methods[k] for k in list(methods)[:1]}
    return [f for f in (fixed_score(s["run"]) for m in source.values() for s in m["seeds"]) if f is not None]


def table(folder: str | Path | list[Path], ref: str, oracle: float | None) -> str:
    d = load(folder)
    sign = 1 if d["objective"]["direction"] == "maximize" else -1
    methods = d["methods"]
    by_seed = completed(d)
    ref = resolve_ref(by_seed, ref)
    lines = [f"### {d['task']} — budget {d['budget_steps']} steps ({d['budget_steps'] / d['horizon']:.3g} horizons), "
             f"{d['objective']['metric']} ({d['objective']['direction']}); paired against `{ref}`", "",
             "| method | complete | val (mean ± se) | test (mean ± se) | paired Δ vs ref (± se) | per seed Δ |"
             + (" gap closed |" if oracle is not None else ""),
             "|---|---|---|---|---|---|" + ("---|" if oracle is not None else "")]
    base = by_seed.get(ref, {})
    fixed = fixed_scores(methods) if oracle is not None else []
    for m, seeds in by_seed.items():
        vals = [s["best_val"] for s in seeds.values()]
        tests = [s["test"] for s in seeds.values() if s.get("test") is not None]
        diffs = deltas(seeds, base, "best_val", sign)
        mv, sv = mean_se(vals)
        mt, st = mean_se(tests)
        md, sd = mean_se(diffs)
        row = (f"| {m} | {len(seeds)}/{len(methods[m]['seeds'])} | {mv:.4g} ± {sv:.2g} | {mt:.4g} ± {st:.2g} | "
               f"{md:+.4g} ± {sd:.2g} | {' '.join(f'{x:+.3g}' for x in diffs)} |")
        if oracle is not None and fixed:
            f0 = sum(fixed) / len(fixed)
            row += f" {(mv - f0) / (oracle - f0):.0%} |" if oracle != f0 else " - |"
        lines.append(row)
    lines += ["", verdicts(by_seed, sign)]
    return "\n".join(lines)


def verdicts(by_seed: dict, sign: int) -> str:
    """Each tree method against the best baseline by mean (paired over seeds both completed) and tree:random,
    on validation (what every method selected on) and on test (what the selected schedule scores unseen)."""
    trees = [m for m in by_seed if is_tree(m)]
    if best_baseline(by_seed, "best_val", sign) is None:
        return "no baseline completed a schedule"
    out = []
    for key in ("best_val", "test"):
        scored = {m: {k: s for k, s in seeds.items() if s.get(key) is not None} for m, seeds in by_seed.items()}
        best = best_baseline(scored, key, sign)
        out.append(f"on {'validation' if key == 'best_val' else 'test'}: best baseline by mean `{best}`")
        for t in trees:
            for ref in [best] + [m for m in trees if m.split("/")[-1] == "tree:random" and m != t]:
                d = deltas(scored[t], scored[ref], key, sign)
                m, se = mean_se(d)
                word = "win" if m > se else ("loss" if m < -se else "tie")
                out.append(f"- `{t}` − `{ref}`: {m:+.4g} ± {se:.2g} over {len(d)} seeds "
                           f"({word}: {'beyond' if abs(m) > se else 'within'} one se)")
    return "\n".join(out)


def paired_vs_best(d: dict) -> tuple[str, dict[str, tuple[float, float]]]:
    """The best baseline by validation mean, and every method's paired validation difference to it (mean, se),
    oriented so that positive is better."""
    sign = 1 if d["objective"]["direction"] == "maximize" else -1
    by_seed = completed(d)
    best = best_baseline(by_seed, "best_val", sign)
    return best, {m: mean_se(deltas(seeds, by_seed[best], "best_val", sign)) for m, seeds in by_seed.items()}


def plot(specs: list[str], path: Path) -> None:
    """One panel per comparison: each method's paired difference to the best baseline (± se), trees in orange."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    docs = [load(s) for s in specs]
    cols = min(len(docs), 3)
    rows = (len(docs) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    for ax, d in zip(axes.flat, docs):
        best, diffs = paired_vs_best(d)
        names = sorted(diffs, key=lambda m: diffs[m][0])
        means = [diffs[m][0] for m in names]
        errs = [0 if math.isnan(diffs[m][1]) else diffs[m][1] for m in names]
        colors = ["tab:orange" if is_tree(m) else "0.6" for m in names]
        ax.barh(range(len(names)), means, xerr=errs, color=colors, capsize=3)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.axvline(0, color="k", lw=0.8)
        counts = sorted({len(v) for v in completed(d).values()})
        n = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
        ax.set_title(f"{d['task']}, {d['budget_steps']} steps ({d['budget_steps'] / d['horizon']:.3g} horizons), "
                     f"{n} seeds", fontsize=9)
        ax.set_xlabel(f"paired Δ {d['objective']['metric']} vs {best.split('/')[-1]} (+ is better)", fontsize=8)
    for ax in list(axes.flat)[len(docs):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", help="compare folders; a+b merges two folders of one task and budget")
    ap.add_argument("--ref", default="tree:random", help="the method every other is paired against")
    ap.add_argument("--oracle", type=float, default=None, help="best score found at 10x the budget")
    ap.add_argument("--merge", action="store_true", help="one table over all folders (methods named folder/method)")
    ap.add_argument("--plot", type=Path, default=None, help="also draw every folder's paired differences here")
    ap.add_argument("--seeds", type=int, default=None, help="only seeds 0..N-1")
    ap.add_argument("--fixed", default=None, help="with --oracle: the compare folder whose runs grew the fixed "
                    "recipe to the horizon (uct.fixed=first), when the compared tree did not")
    args = ap.parse_args()
    global SEEDS, FIXED_FROM
    SEEDS, FIXED_FROM = args.seeds, args.fixed
    if args.plot is not None:
        plot(args.folders, args.plot)
    if args.merge:
        print(table([Path(f) for f in args.folders], args.ref, args.oracle))
        return
    for f in args.folders:
        print(table(f, args.ref, args.oracle))
        print()


if __name__ == "__main__":
    main()
