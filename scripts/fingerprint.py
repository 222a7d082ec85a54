"""Print a stable fingerprint of one or more runs: did a refactor change what the search does?

    python scripts/fingerprint.py RUN_DIR [RUN_DIR ...]

Every ``tree.db`` under each RUN_DIR (a run, or a ``compare`` directory with its runs) is read
directly with ``sqlite3`` — not through searchmgr, so the script reads the same before and after a
change to the package — and printed as one line per run: a hash of its node rows, of its stored
metrics, of its decisions, and a short summary (nodes per status, the range of validation scores); a
``compare`` directory also gets a line for its ``compare.json`` (without wall times and run paths).

What is hashed: node id, parent, depth, recipe, status, source, step range, steps trained, val/test
scores, utility, visits, value sum, error; every metric row (node, step, key, value); each decision's
node, child, kind, source, attempt, verdict, rejection, applied flag and parsed answer. What is not:
wall times, timestamps, revisions, checkpoint paths and hashes, the decision contexts (they carry
timings), absolute paths. Floats are hashed exactly (``repr``): a behaviour-preserving change must
give the same bits.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import sys
from collections import Counter
from pathlib import Path

NODE_COLUMNS = ("id", "parent_id", "depth", "recipe", "status", "source", "start_step", "end_step",
                "steps_trained", "val_score", "test_score", "utility", "visits", "value_sum", "error")
DECISION_COLUMNS = ("node_id", "child_id", "kind", "source", "attempt", "verdict", "rejection", "applied",
                    "parsed")


def _digest(rows: list) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=repr).encode()).hexdigest()[:16]


def _canonical(value: object) -> object:
    """Floats as their exact repr; JSON text (recipes, parsed answers) decoded so key order does not matter."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return _canonical(json.loads(value))
        except ValueError:
            return value
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def fingerprint(db_path: Path) -> dict:
    """The hashes and summary of one run's store."""
    conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        nodes = [[_canonical(v) for v in row] for row in
                 conn.execute(f"SELECT {', '.join(NODE_COLUMNS)} FROM nodes ORDER BY id")]
        metrics = [[_canonical(v) for v in row] for row in
                   conn.execute("SELECT node_id, step, key, value FROM metrics ORDER BY node_id, step, key, rowid")]
        columns = {r[1] for r in conn.execute("PRAGMA table_info(decisions)")}
        wanted = [c for c in DECISION_COLUMNS if c in columns]
        decisions = [[_canonical(v) for v in row] for row in
                     conn.execute(f"SELECT {', '.join(wanted)} FROM decisions ORDER BY id")]
    finally:
        conn.close()
    status = Counter(row[NODE_COLUMNS.index("status")] for row in nodes)
    scores = [float(row[NODE_COLUMNS.index("val_score")]) for row in nodes
              if row[NODE_COLUMNS.index("val_score")] is not None]
    return {"nodes": _digest(nodes), "metrics": _digest(metrics), "decisions": _digest(decisions),
            "all": _digest([nodes, metrics, decisions]), "n_nodes": len(nodes), "n_metrics": len(metrics),
            "status": dict(sorted(status.items())),
            "val_range": [min(scores), max(scores)] if scores else None}


def comparison(path: Path) -> str:
    """A hash of a ``compare.json`` without its wall times and run paths."""
    def clean(x: object) -> object:
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items() if k not in ("wall_s", "run", "out", "path")}
        if isinstance(x, list):
            return [clean(v) for v in x]
        return _canonical(x)

    return _digest([clean(json.loads(path.read_text()))])


def runs(root: Path) -> list[tuple[str, Path]]:
    """(name relative to ``root``, tree.db) for every run under ``root``, sorted."""
    found = sorted(root.rglob("tree.db"))
    return [(str(p.parent.relative_to(root)) or ".", p) for p in found]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    args = parser.parse_args(argv)
    missing = 0
    for root in args.run_dirs:
        found = runs(root)
        if not found:
            print(f"{root.name}: no tree.db under {root}", file=sys.stderr)
            missing += 1
        for name, db in found:
            fp = fingerprint(db)
            label = root.name if name == "." else f"{root.name}/{name}"
            val = "-" if fp["val_range"] is None else f"{fp['val_range'][0]:.4f}..{fp['val_range'][1]:.4f}"
            print(f"{label} all={fp['all']} nodes={fp['nodes']} metrics={fp['metrics']} "
                  f"decisions={fp['decisions']} | {fp['n_nodes']} nodes {fp['status']} "
                  f"{fp['n_metrics']} metrics val {val}")
        if (root / "compare.json").is_file():
            print(f"{root.name}/compare.json {comparison(root / 'compare.json')} (without wall times and paths)")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
