"""No import circle anywhere in the package (scripts/import_cycles.py draws every import, function-level too)."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "import_cycles.py"


def finder():
    spec = importlib.util.spec_from_file_location("import_cycles", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_package_has_no_import_circle():
    f = finder()
    edges = f.graph()
    assert "searchmgr.tasks.contract" in edges and "searchmgr.coordinator" in edges  # mapped folders are drawn
    found = f.cycles(edges)
    assert not found, [f.circle(edges, group) for group in found]


def test_the_finder_sees_a_function_level_circle(tmp_path):
    f = finder()
    (tmp_path / "pyproject.toml").write_text('[tool.setuptools]\npackages = ["searchmgr"]\n'
                                             '[tool.setuptools.package-dir]\n"searchmgr.tasks" = "tasks"\n')
    (tmp_path / "searchmgr").mkdir()
    (tmp_path / "searchmgr" / "__init__.py").write_text("")
    (tmp_path / "searchmgr" / "a.py").write_text("from searchmgr import b\n")
    (tmp_path / "searchmgr" / "b.py").write_text("def f():\n    from searchmgr.tasks import contract\n")
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "__init__.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                                    "    from searchmgr import a\n")
    (tmp_path / "tasks" / "contract.py").write_text("from .. import a\n")
    edges = f.graph(tmp_path)
    assert edges["searchmgr.b"] == {"searchmgr.tasks.contract"}  # from a package import a submodule
    assert edges["searchmgr.tasks"] == set()  # TYPE_CHECKING imports never run
    assert f.cycles(edges) == [["searchmgr.a", "searchmgr.b", "searchmgr.tasks.contract"]]
    assert f.circle(edges, f.cycles(edges)[0]) == ["searchmgr.a", "searchmgr.b", "searchmgr.tasks.contract",
                                                   "searchmgr.a"]
