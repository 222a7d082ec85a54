"""scripts/bench_stress.py at smoke size: it runs the job, its numbers match the store, and it redraws."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from searchmgr.analysis.run import load_run

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_stress.py"


@pytest.fixture(scope="module")
def bench_stress():
    spec = importlib.util.spec_from_file_location("bench_stress", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(module, monkeypatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
    module.main()


def test_runs_the_job_reports_from_the_store_and_redraws(bench_stress, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEARCHMGR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run_dir, figure = tmp_path / "run", tmp_path / "stress.png"
    main(bench_stress, monkeypatch, "--run", str(run_dir), "-o", str(figure), "preset=smoke", "data=generator")
    assert "final/best" in capsys.readouterr().out and figure.read_bytes()[:4] == b"\x89PNG"
    s = json.loads((run_dir / "stress.json").read_text())
    run = load_run(run_dir)
    for name, path in (("fixed", run.fixed_path()), ("best", run.best_path())):
        leaf = path[-1]
        assert s[name]["node"] == leaf.id and s[name]["final_test"] == leaf.test_score
        assert s[name]["final_val"] == leaf.val_score  # the score at the horizon is the last evaluation
        assert s[name]["best_val"] <= s[name]["final_val"]
        assert s[name]["final_over_best"] == s[name]["final_val"] / s[name]["best_val"]
    assert s["timing"]["command"].startswith("searchmgr explore task=tinystories_overfit")
    assert s["timing"]["cpu_s"] > 0 and s["steps_used"] <= s["budget_steps"]
    # a redraw reads the run again and keeps the timing of the run that made it
    figure.unlink()
    main(bench_stress, monkeypatch, "--run", str(run_dir), "-o", str(figure), "--redraw")
    assert figure.is_file() and json.loads((run_dir / "stress.json").read_text())["timing"] == s["timing"]
    # settings for a run that already exists are refused rather than silently ignored
    with pytest.raises(SystemExit, match="already holds a run"):
        main(bench_stress, monkeypatch, "--run", str(run_dir), "seed=3")


def test_redraw_of_a_missing_run_says_how_to_fix(bench_stress, tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match="drop --redraw"):
        main(bench_stress, monkeypatch, "--run", str(tmp_path / "nothing"), "--redraw")
