import json
import os
import subprocess
import sys

import pytest

from searchmgr.cli import main


@pytest.mark.parametrize("command", [[], ["tasks"], ["explore"], ["show"], ["export"]])
def test_help_on_every_command(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([*command, "--help"])
    assert e.value.code == 0
    assert "usage: searchmgr" in capsys.readouterr().out


@pytest.mark.parametrize("words,needle", [
    (["task=nope"], "unknown task 'nope'; choose one of"),
    (["task=toy", "budget.stepz=3"], "unknown key 'budget.stepz'; budget has"),
    (["task=toy", "bogus=1"], "nor an option of task toy"),
    (["task=toy", "budget.steps=-1"], "budget.steps: Input should be greater than or equal to 1"),
    (["task=toy", "preset=huge"], "no preset 'huge'; choose one of"),
    (["task=toy", "seed"], "is not key=value"),
    (["task=toy", "uct=3"], "is a section"),
    (["budget.steps=3"], "which task?"),
    (["task=toy", "stopper.name=psychic"], "unknown stopper 'psychic'"),
])
def test_bad_input_fails_with_a_message(words, needle, capsys, tmp_path):
    assert main(["explore", *words, f"out={tmp_path / 'r'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err
    assert not (tmp_path / "r" / "tree.db").exists()


def test_show_and_export_errors(capsys, tmp_path):
    assert main(["show", str(tmp_path / "missing")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "tree.db").write_bytes(b"this is not sqlite" * 100)
    assert main(["show", str(bad)]) == 2
    assert "not a readable searchmgr store" in capsys.readouterr().err
    assert main(["explore", "--resume", str(bad)]) == 2


def test_explore_show_export_end_to_end(tmp_path):
    run = tmp_path / "toy3"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cli = [sys.executable, "-m", "searchmgr"]
    r = subprocess.run([*cli, "explore", "task=toy", "preset=smoke", "budget.steps=120", "seed=3", f"out={run}"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "best val/loss=" in r.stdout and f"run: {run}" in r.stdout and "fixed recipe val/loss=" in r.stdout
    r = subprocess.run([*cli, "explore", "--resume", str(run), "budget.steps=160"], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*cli, "show", str(run), "--decisions"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "best path:" in r.stdout and "diagnosis:" in r.stdout
    out = tmp_path / "schedule.json"
    r = subprocess.run([*cli, "export", str(run), "-o", str(out)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["task"] == "toy"
    r = subprocess.run([*cli, "tasks"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and "toy" in r.stdout and "weight_decay" in r.stdout
