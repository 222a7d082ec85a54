import pytest


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory):
    """A finished toy search (smoke preset, a few seconds): the tree, metrics and decisions to report on."""
    from searchmgr.search import explore

    out = tmp_path_factory.mktemp("analysis") / "toy"
    explore(["task=toy", "preset=smoke", "seed=0", f"out={out}"])
    return out
