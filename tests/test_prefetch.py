"""Prefetched proposals: guessed parents, use when still valid, ``stale`` otherwise."""

from __future__ import annotations

from fake_openai_server import FakeOpenAI, decision

from searchmgr import uct
from searchmgr.config import build_config, parse_overrides
from searchmgr.prefetch import likely_parents
from searchmgr.search import Search
from searchmgr.store import DecisionKind

GOOD = decision([{"knob": "dropout", "op": "add", "value": 0.05}])


def view(nodes):
    return uct.TreeView.build([uct.NodeView(*n) for n in nodes])


def test_likely_parents_cover_outcomes_and_never_the_training_node():
    # root 1 -> 2 (done, good) -> 4 (training); root 1 -> 3 (done, poor)
    tree = view([(1, None, 0, True, None, 2, -1.0), (2, 1, 1, True, -0.3, 1, -0.3), (3, 1, 1, True, -0.9, 1, -0.9),
                 (4, 2, 2, False, None, 0, 0.0)])
    parents = likely_parents(tree, 4, c=0.5, k_max=3, max_depth=3, parent_utility=-0.3)
    assert parents and 4 not in parents and len(set(parents)) == len(parents)
    assert set(parents) <= {1, 2, 3}


def make_search(tmp_path, url):
    words = ["task=toy", "preset=smoke", "segment_steps=10", "eval_every=5", "max_depth=2", "budget.steps=60",
             "manager.name=openai", f"manager.base_url={url}", "manager.backoff_s=0", f"out={tmp_path / 'run'}"]
    return Search.create(build_config(parse_overrides(words)))


def test_a_prefetched_proposal_is_used_only_for_the_same_parent_state(tmp_path):
    with FakeOpenAI(default=lambda body: GOOD) as srv:
        search = make_search(tmp_path, srv.base_url)
        try:
            assert search.prefetch is not None  # on by default for the openai manager
            nodes = search.nodes()
            root = nodes[0]
            ctx = search.context(root, nodes)
            # requested when the root had a child it no longer has alone: stale
            search.prefetch.submit(ctx, children=(99,))
            assert search._prefetched(root, ctx) is None
            # requested for the root as it stands: used
            search.prefetch.submit(ctx, children=())
            attempts = search._prefetched(root, ctx)
            assert attempts and attempts[-1].verdict.ok and search.prefetch.used == 1
            ds = search.store.decisions(search.search_id, kind=DecisionKind.MANAGER)
        finally:
            search.close()
    stale = [d for d in ds if d.verdict == "stale"]
    assert len(stale) == 1 and "gained a child" in stale[0].reason and stale[0].context["prefetched"]
    assert not stale[0].applied
