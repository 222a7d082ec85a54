import os

import pytest

os.environ.setdefault("SEARCHMGR_CACHE", os.path.join(os.path.dirname(__file__), "..", ".cache", "searchmgr"))


@pytest.fixture(scope="session")
def toy_surface():
    from searchmgr.tasks import make_task

    return make_task("toy", {"preset": "smoke"}).surface

import torch

# tiny models: one thread avoids OpenMP spinning when the machine is busy
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")
