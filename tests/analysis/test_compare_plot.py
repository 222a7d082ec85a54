"""compare.png: one best-so-far line per method that completed a schedule, and a plain note when none did."""

from __future__ import annotations

import warnings

import matplotlib.image as mpimg
import numpy as np

from searchmgr.analysis.compare import plot_compare


def result(curves: dict[str, list]) -> dict:
    return {"task": "toy", "budget_steps": 100, "objective": {"metric": "val/loss"},
            "methods": {k: {"seeds": [{"curve": c} for c in cs]} for k, cs in curves.items()}}


def test_no_complete_schedule_draws_a_note_not_an_empty_legend(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns about a legend without artists
        path = plot_compare(result({"tree": [[[50, None]]], "grid": [[]]}), tmp_path / "none.png")
    img = mpimg.imread(path)
    assert img.ndim == 3 and np.std(img[..., :3]) > 0.01  # the axes and the note, not a blank canvas


def test_methods_that_completed_are_drawn(tmp_path):
    path = plot_compare(result({"tree": [[[40, 0.5], [80, 0.4]], [[60, 0.45]]], "grid": [[]]}), tmp_path / "some.png")
    assert mpimg.imread(path).shape[0] > 200
