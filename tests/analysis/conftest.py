import pytest


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory):
    """A finished toy search (smoke preset, a few seconds): the tree, metrics and decisions to report on."""
    from searchmgr.search import explore

    out = tmp_path_factory.mktemp("analysis") / "toy"
    # an evaluation every 5 steps: the rule stopper needs two before it judges; with the margin alone (no noise
    # allowance) the search prunes, so the pruned markers and stop decisions are there to report on
    explore(["task=toy", "preset=smoke", "seed=0", "eval_every=5", "stopper.noise=false", f"out={out}"])
    return out


@pytest.fixture(scope="session")
def rl_run(tmp_path_factory):
    """A finished RL search (arm_reckless, smoke preset, seconds): returns, success, KL and entropy recorded."""
    from searchmgr.search import explore

    out = tmp_path_factory.mktemp("analysis") / "arm"
    explore(["task=arm_reckless", "preset=smoke", "seed=0", "threads=1", f"out={out}"])
    return out
