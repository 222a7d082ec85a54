"""One family of errors: every error searchmgr raises on purpose is a :class:`SearchmgrError`.

Those that come from what a person gave or has (settings, paths, a run's files, a task,
an endpoint, a missing optional dependency) are also a :class:`UserError`: their message
names the fix, and the CLI prints ``error: <message>`` for them instead of a traceback.
Anything else that escapes is a bug, and the CLI shows its traceback.

The concrete errors keep the built-in base they always had (``ConfigError`` is still a
``ValueError``, ``StoreError`` a ``RuntimeError`` ...), so ``except ValueError`` and the
like keep working.
"""

from __future__ import annotations


class SearchmgrError(Exception):
    """Base of every error searchmgr raises on purpose."""


class UserError(SearchmgrError):
    """An error in what a person gave or has; its message says how to fix it (the CLI prints it, no traceback)."""
