"""Shared by the TinyStories task tests: an isolated cache and a segment runner that logs evaluations."""

import pytest

from searchmgr.tasks.base import Segment


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    """A private tokenizer cache and no hub probing in every test."""
    monkeypatch.setenv("SEARCHMGR_CACHE", str(tmp_path_factory.getbasetemp() / "searchmgr-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def run(task, checkpoint, recipe, start, steps, horizon=16, every=4):
    log: list[tuple[int, dict]] = []
    result = task.train_segment(checkpoint, recipe, Segment(start, steps, horizon, every),
                                lambda s, m: log.append((s, dict(m))) or False)
    return result, log
