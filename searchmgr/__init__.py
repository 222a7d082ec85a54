"""searchmgr: discover adaptive training schedules by UCT search over checkpointed recipe segments."""

from searchmgr.errors import SearchmgrError, UserError

__version__ = "0.1.0"
__all__ = ["SearchmgrError", "UserError", "__version__"]
