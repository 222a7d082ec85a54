"""Driver of the randomized kill test (tests/test_kill_points.py); run as a script.

One interpreter imports torch and searchmgr once, then forks one child per kill point:
the child runs ``explore`` (creating the run) or ``explore --resume`` with
``SEARCHMGR_TEST_KILL_AT=N`` and dies with ``os._exit`` at its N-th kill point (a store
transaction or the rename that publishes a new run), as abruptly as a SIGKILL. After
each child the driver snapshots the run directory. At the end it resumes once more
without a kill, to completion, and writes every snapshot as JSON for the test to check.

Usage: python kill_driver.py WORKDIR OUT.json SEED KILLS
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import sys
import traceback
from pathlib import Path

from searchmgr.store.db import MIGRATIONS

OPTIONS = ["task=toy", "preset=smoke", "width=16", "segment_steps=10", "eval_every=5", "max_depth=4",
           "budget.steps=400", "seed=1"]
# kill points while a run is created: one per migration, the search, the root, the root done, the event, the rename
CREATION_POINTS = len(MIGRATIONS) + 5


def snapshot(workdir: Path, run: Path) -> dict:
    """What the test checks after a kill: the nodes, duplicate metric rows, checkpoints, leftovers."""
    out: dict = {"exists": run.exists(), "partials": sorted(p.name for p in workdir.glob(".run.partial-*"))}
    if not (run / "tree.db").exists():
        return out
    con = sqlite3.connect(f"file:{run / 'tree.db'}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT id, parent_id, status, val_score, finished_at, checkpoint, checkpoint_sha256, "
                           "steps_trained, source, recipe, depth FROM nodes ORDER BY id").fetchall()
        out["duplicate_metrics"] = con.execute(
            "SELECT COUNT(*) FROM (SELECT node_id, step, key FROM metrics GROUP BY node_id, step, key "
            "HAVING COUNT(*) > 1)").fetchone()[0]
        out["events"] = [list(r) for r in con.execute("SELECT kind, node_id FROM events ORDER BY id")]
        out["integrity"] = con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()
    nodes = []
    for r in rows:
        n = dict(zip(("id", "parent_id", "status", "val_score", "finished_at", "checkpoint", "sha256",
                      "steps_trained", "source", "recipe", "depth"), r))
        if n["checkpoint"]:
            path = run / n["checkpoint"]
            n["checkpoint_ok"] = path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == n["sha256"]
        nodes.append(n)
    out["nodes"] = nodes
    out["lock"] = (run / "owner.lock").read_text() if (run / "owner.lock").exists() else None
    return out


def child(run: Path, kill_at: int) -> None:
    from searchmgr.search import explore

    os.environ["SEARCHMGR_TEST_KILL_AT"] = str(kill_at)
    try:
        if (run / "tree.db").exists():
            explore([], resume=run)
        else:
            explore(OPTIONS + [f"out={run}"])
    except BaseException:
        traceback.print_exc()
        os._exit(3)
    os._exit(0)


def main(workdir: Path, out: Path, seed: int, kills: int) -> None:
    import torch

    torch.set_num_threads(1)
    from searchmgr.search import explore

    # warm up: every lazy import and first use happens here once, not in each forked child
    explore(OPTIONS + ["budget.steps=40", f"out={workdir / 'warm'}"])
    rng = random.Random(seed)
    run = workdir / "run"
    records = []
    creations = 0
    for _ in range(2 * kills):
        if sum(r["exit"] == 137 for r in records) >= kills:
            break
        creating = not (run / "tree.db").exists()
        if creating:
            creations += 1  # the first three creations die during creation; later ones in the search after it
            kill_at = rng.randint(1, CREATION_POINTS) if creations <= 3 else CREATION_POINTS + rng.randint(1, 15)
        else:
            kill_at = rng.randint(1, 15)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            child(run, kill_at)
        _, status = os.waitpid(pid, 0)
        phase = ("create" if not (run / "tree.db").exists() else "search") if creating else "resume"
        records.append({"phase": phase, "kill_at": kill_at,
                        "exit": os.waitstatus_to_exitcode(status), "after": snapshot(workdir, run)})
    explore([], resume=run)  # to completion, no kill
    records.append({"phase": "final", "kill_at": None, "exit": 0, "after": snapshot(workdir, run)})
    out.write_text(json.dumps({"seed": seed, "records": records}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
