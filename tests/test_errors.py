"""One error family: every deliberate error is a SearchmgrError; user errors print `error: ...`, bugs a traceback."""

import argparse

import pytest

from searchmgr import SearchmgrError, UserError, cli
from searchmgr.commands import CommandError
from searchmgr.config import ConfigError
from searchmgr.executors.base import ExecutorUnavailable
from searchmgr.managers.base import ManagerError
from searchmgr.managers.openai_backend import BackendError
from searchmgr.rundir import RunNotFound
from searchmgr.schedule import ScheduleError
from searchmgr.store import CheckpointCorrupt, NodeNotFound, StoreError
from searchmgr.surface import RecipeError
from searchmgr.tasks import TaskError

BUILTIN = {ConfigError: ValueError, TaskError: ValueError, RecipeError: ValueError, CommandError: ValueError,
           ScheduleError: ValueError, StoreError: RuntimeError, ManagerError: RuntimeError,
           BackendError: RuntimeError, ExecutorUnavailable: RuntimeError, CheckpointCorrupt: RuntimeError,
           NodeNotFound: KeyError, RunNotFound: FileNotFoundError}


@pytest.mark.parametrize("error", list(BUILTIN), ids=lambda e: e.__name__)
def test_every_error_is_a_user_error_and_keeps_its_builtin_base(error):
    assert issubclass(error, UserError) and issubclass(error, SearchmgrError)
    assert issubclass(error, BUILTIN[error])  # `except ValueError` and the like still catch it


def test_node_not_found_reads_as_its_message():
    assert str(NodeNotFound("run 1 has no node 9")) == "run 1 has no node 9"  # not KeyError's quoted repr


def _raising(monkeypatch, error):
    def fn(args):
        raise error

    monkeypatch.setattr(cli, "build_parser", lambda: _Parser(fn))


class _Parser:
    def __init__(self, fn):
        self.fn = fn

    def parse_args(self, argv):
        return argparse.Namespace(fn=self.fn, command="show")


@pytest.mark.parametrize("error", [ExecutorUnavailable("install ray: pip install 'searchmgr[ray]'"),
                                   ManagerError("the endpoint stayed down"), CommandError("no node 7")])
def test_the_cli_prints_every_user_error_without_a_traceback(error, monkeypatch, capsys):
    _raising(monkeypatch, error)
    assert cli.main([]) == 2
    assert capsys.readouterr().err.strip() == f"error: {error}"


def test_a_bug_keeps_its_traceback(monkeypatch):
    _raising(monkeypatch, ZeroDivisionError("a bug"))
    with pytest.raises(ZeroDivisionError):
        cli.main([])
    _raising(monkeypatch, SearchmgrError("deliberate, but not the user's to fix"))
    with pytest.raises(SearchmgrError):
        cli.main([])
