"""Text from outside (LLM answers, endpoints, stored runs) made safe to keep and to show.

* :class:`Redactor` removes secrets (the API key, and anything shaped like a key) from
  text. The store applies it to everything it writes; the console, ``show`` and the
  CLI's error messages apply it to everything they print.
* :func:`cap` bounds a text to a documented size (:data:`MAX_FIELD_CHARS` for one
  free-text field of a decision, :data:`MAX_ANSWER_CHARS` for a whole answer), so a
  hostile answer can neither bloat the store nor the prompts of every descendant.
* :func:`for_terminal` strips control characters (ANSI escapes, title-setting and
  clear-screen sequences, bidi overrides) before text reaches a terminal.
* :func:`md_escape` escapes text for Markdown (raw HTML such as ``<script>`` included).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

MAX_ANSWER_CHARS = 32_768  # a whole LLM answer (raw response) kept or parsed; longer answers are rejected
MAX_FIELD_CHARS = 1_000  # one free-text field of a decision (diagnosis, expected outcome) stored and re-sent
MAX_SHORT_CHARS = 300  # short fields: an audit reason, a watch item, a stopper's reason
MAX_STORED_CHARS = 65_536  # any other text the store keeps (error messages, tracebacks, events)
MAX_SHOWN_CHARS = 200  # a user's value echoed back in an error message

_KEYLIKE = re.compile(r"\b(sk|key|token)-[A-Za-z0-9_\-*.]{4,}", re.I)
# C0 controls but tab and newline, DEL, C1 controls, and the Unicode bidi overrides / isolates
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#!~])")


def cap(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, saying how much was dropped."""
    if len(text) <= limit:
        return text
    marker = f"…[{len(text) - limit} more chars dropped]"
    return text[:max(limit - len(marker), 0)] + marker


def shorten(value: Any, limit: int = MAX_SHOWN_CHARS) -> str:
    """``repr(value)`` short enough to echo back in an error message."""
    return cap(repr(value), limit)


@dataclass(frozen=True)
class Redactor:
    """Replaces the given secrets, and anything shaped like an API key (``sk-...``), by ``***``."""

    secrets: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, *names: str | None) -> "Redactor":
        """The values of the environment variables ``names`` (never stored: only used to find them in text)."""
        values = (os.environ.get(n) for n in names if n)
        return cls(tuple(v for v in values if v and len(v) >= 4))

    def __call__(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, "***")
        return _KEYLIKE.sub(lambda m: f"{m.group(1)}-***", text)


def for_terminal(text: str) -> str:
    """``text`` without escape sequences and control characters (newlines and tabs kept)."""
    return _CONTROL.sub("", _ANSI.sub("", text))


def fmt(v: float | None, digits: int = 4) -> str:
    """A score as people read it: ``digits`` significant digits, ``-`` for none."""
    return "-" if v is None else f"{v:.{digits}g}"


def one_line(text: str) -> str:
    """``text`` safe for a terminal and on one line."""
    return " ".join(for_terminal(text).split())


def md_escape(text: str) -> str:
    """``text`` as literal Markdown: one line, specials backslash-escaped, ``&`` as an entity (no raw HTML)."""
    return _MD_SPECIAL.sub(r"\\\1", one_line(text).replace("&", "&amp;"))
