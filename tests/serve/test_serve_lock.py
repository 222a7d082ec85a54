"""The service never locks the running search: pages poll and people post children while it trains."""

import random
import threading

import httpx

from searchmgr.config import build_config
from searchmgr.search import create_run
from searchmgr.serve import ServeSettings, start_service
from searchmgr.store import CommandStatus, NodeStatus, TreeStore


def test_polling_and_commands_never_make_the_search_fail(tmp_path):
    config = build_config({"task": "toy", "task_options": {"preset": "smoke"}, "out": str(tmp_path / "run"),
                           "budget": {"steps": 400}, "uct": {"k_max": 6}})
    search = create_run(config)
    service = start_service([search.run_dir], ServeSettings(port=0), echo=lambda _: None)
    done = threading.Event()
    stats = {"reads": 0, "posts": 0, "errors": []}

    def poll(seed: int) -> None:  # a page: tree by revision, the open node, the commands
        rng, rev = random.Random(seed), None
        with httpx.Client(base_url=service.url, timeout=30) as c:
            while not done.is_set():
                tree = c.get("/api/runs/run/tree" + (f"?after={rev}" if rev else ""))
                node = c.get(f"/api/runs/run/nodes/{rng.randint(1, 20)}")
                cmds = c.get("/api/runs/run/commands")
                for r in (tree, node, cmds):
                    if r.status_code >= 500 or (r.status_code >= 400 and r is not node):
                        stats["errors"].append((r.url, r.status_code, r.text))
                rev = tree.json()["revision"] if tree.status_code == 200 else rev
                stats["reads"] += 3

    def post() -> None:  # a person proposing children of trained nodes
        rng = random.Random(7)
        with httpx.Client(base_url=service.url, timeout=30) as c:
            while not done.wait(0.05):
                nodes = c.get("/api/runs/run/tree").json()["nodes"]
                done_ids = [n["id"] for n in nodes if n["status"] == "done" and n["depth"] < 3]
                if not done_ids:
                    continue
                r = c.post(f"/api/runs/run/nodes/{rng.choice(done_ids)}/children",
                           json={"recipe": {"weight_decay": rng.choice([0.01, 0.02, 0.03, 0.04])}})
                if r.status_code not in (202, 409, 422):
                    stats["errors"].append((r.url, r.status_code, r.text))
                stats["posts"] += r.status_code == 202

    threads = [threading.Thread(target=poll, args=(i,)) for i in range(2)] + [threading.Thread(target=post)]
    for t in threads:
        t.start()
    for _ in range(3000):  # both pages polling before the search starts (at most 30 s)
        if stats["reads"] >= 6 or stats["errors"]:
            break
        done.wait(0.01)
    reads_before = stats["reads"]
    try:
        outcome = search.run()  # raises sqlite3.OperationalError("database is locked") if the service locks it
    finally:
        done.set()
        for t in threads:
            t.join()
        service.stop()
        search.close()
    assert "exhausted" in outcome.stop_reason and outcome.nodes_trained >= 10  # the step budget, or the tree
    assert not stats["errors"], stats["errors"][:3]
    assert stats["reads"] > reads_before and stats["posts"] >= 1  # pages read and people posted while it trained
    with TreeStore(tmp_path / "run" / "tree.db") as s:
        sid = s.search()["id"]
        nodes = s.nodes(sid)
        assert not [n for n in nodes if n.status is NodeStatus.FAILED]
        applied = [c for c in s.commands(sid) if c.status is CommandStatus.APPLIED]
        assert applied and all(any(n.id == c.child_id and n.source == "human" for n in nodes) for c in applied)
