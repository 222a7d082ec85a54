"""searchmgr: discover adaptive training schedules by UCT search over checkpointed recipe segments."""

from searchmgr.errors import SearchmgrError, UserError

__version__ = "0.1.0"
__all__ = ["Run", "SearchmgrError", "UserError", "__version__"]


def __getattr__(name: str):
    """``searchmgr.Run`` (:mod:`searchmgr.run`), imported when first asked for: ``import searchmgr`` stays light."""
    if name == "Run":
        from searchmgr.run import Run

        return Run
    raise AttributeError(f"module 'searchmgr' has no attribute {name!r}")
