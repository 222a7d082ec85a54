"""A chat-completions backend for any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp).

One :class:`ChatBackend` wraps the official ``openai`` client with the settings of
``config.manager`` and adds what a search needs from an endpoint:

* **structured output with fallbacks**: ``output=auto`` asks for the answer's JSON
  schema (``response_format: json_schema``: OpenAI, vLLM); a server that refuses it
  (an error whose message is about ``response_format``, as OpenAI's 400 or
  llama.cpp's 500; a 400 about anything else, such as the context length, is no
  refusal and changes no mode) is asked with the schema inside JSON mode
  (``json_object`` + ``schema``: llama.cpp's grammar-constrained decoding), then
  in plain JSON mode, then in plain text; the
  mode that worked is kept for later requests. The verifier parses whatever comes back.
* **bounded retries with backoff** on network errors, timeouts, 429 and 5xx (the
  client's own retries are off, so the count is exactly ``max_retries``); after
  that :class:`BackendError`. Other errors (401, 404 ...) fail at once.
* **the API key only from the environment**: the variable *named* by
  ``api_key_env`` is read when the client is built; the key is never stored,
  logged, or put into errors or traces.
* **any answer is checked**: a 200 whose body is not a chat completion (HTML, empty,
  truncated JSON, wrong types) raises :class:`BackendError` like any endpoint failure;
  the content must be text. Nothing else escapes :meth:`ChatBackend.complete`.

The backend is thread-safe: the LLM stopper calls it from its own worker thread while
the coordinator asks the manager.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import openai

from searchmgr.errors import UserError
from searchmgr.sanitize import Redactor, cap, one_line

log = logging.getLogger(__name__)

OutputMode = Literal["json_schema", "json_object_schema", "json_object", "text"]
MODES: tuple[OutputMode, ...] = ("json_schema", "json_object_schema", "json_object", "text")
NO_KEY = "not-set"  # sent when the key variable is unset: local servers (llama.cpp, vLLM, Ollama) ignore it


class BackendError(UserError, RuntimeError):
    """The endpoint could not answer (after the bounded retries, or at once for non-retryable errors)."""

    def __init__(self, message: str, latency_s: float | None = None):
        super().__init__(message)
        self.latency_s = latency_s  # time spent before giving up


@dataclass(frozen=True)
class BackendSettings:
    """The endpoint settings (from ``config.manager``); holds the key variable's name, never the key."""

    base_url: str | None
    model: str
    temperature: float = 0.2
    max_tokens: int = 1024
    timeout_s: float = 60.0
    max_retries: int = 2
    backoff_s: float = 1.0
    api_key_env: str = "OPENAI_API_KEY"
    output: Literal["auto", "json_schema", "json_object_schema", "json_object", "text"] = "auto"

    @classmethod
    def from_manager_config(cls, m: Any) -> "BackendSettings":
        return cls(base_url=m.base_url, model=m.model, temperature=m.temperature, max_tokens=m.max_tokens,
                   timeout_s=m.timeout_s, max_retries=m.max_retries, backoff_s=m.backoff_s,
                   api_key_env=m.api_key_env, output=m.output)


@dataclass(frozen=True)
class Completion:
    """One answer and what the trace records about it."""

    text: str
    mode: OutputMode  # the output mode that produced it
    latency_s: float  # wall time of the whole call, retries included
    tries: int  # HTTP requests made (retries and mode fallbacks included)
    prompt_tokens: int | None
    completion_tokens: int | None
    notes: tuple[str, ...] = ()  # retries and mode changes, for the trace


def _retry_after(e: openai.APIStatusError) -> float | None:
    value = e.response.headers.get("retry-after") if e.response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


# what an error about the output mode says (OpenAI, vLLM, llama.cpp); other 400s (context length ...) are no refusal
_ABOUT_FORMAT = re.compile(r"response_format|json_schema|json_object|structured output|guided_json|grammar", re.I)


def _get(obj: Any, name: str) -> Any:
    """A field of a parsed answer, whether the client built an object or left a dict."""
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _tokens(usage: Any, name: str) -> int | None:
    value = _get(usage, name)
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10 ** 9 else None


class ChatBackend:
    """Chat completions with structured-output fallbacks and bounded retries (see the module docstring)."""

    def __init__(self, settings: BackendSettings, *, sleep=time.sleep):
        self.settings = settings
        self._sleep = sleep
        self._lock = threading.Lock()
        self._mode_index = 0 if settings.output == "auto" else MODES.index(settings.output)
        key = os.environ.get(settings.api_key_env) or NO_KEY
        self.client = openai.OpenAI(api_key=key, base_url=settings.base_url, timeout=settings.timeout_s,
                                    max_retries=0)
        self._redact = Redactor((key,) if key != NO_KEY else ())
        del key  # the client holds it; this object never stores or prints it

    def _short(self, e: Exception) -> str:
        """A one-line description of an error, safe for traces and logs."""
        return f"{type(e).__name__}: {cap(self._redact(one_line(str(e))), 300)}"

    @property
    def mode(self) -> OutputMode:
        return MODES[self._mode_index]

    def _downgrade(self, failed: OutputMode) -> bool:
        """After a refusal of ``failed``: move to the next mode (auto only); False when none is left."""
        if self.settings.output != "auto":
            return False
        with self._lock:
            if self.mode == failed:  # another thread may have moved on already
                if self._mode_index + 1 >= len(MODES):
                    return False
                self._mode_index += 1
        return True

    def _response_format(self, mode: OutputMode, schema: Mapping[str, Any] | None, name: str) -> dict | None:
        if mode == "json_schema" and schema is not None:
            return {"type": "json_schema", "json_schema": {"name": name, "schema": dict(schema), "strict": False}}
        if mode == "json_object_schema" and schema is not None:
            return {"type": "json_object", "schema": dict(schema)}
        if mode != "text":
            return {"type": "json_object"}
        return None

    def complete(self, messages: Sequence[Mapping[str, str]], *, schema: Mapping[str, Any] | None = None,
                 schema_name: str = "answer") -> Completion:
        """Ask once (with retries and mode fallbacks); raise :class:`BackendError` when the endpoint fails."""
        s = self.settings
        t0 = time.perf_counter()
        tries, retries, notes = 0, 0, []
        while True:
            mode = self.mode
            kwargs: dict[str, Any] = {"model": s.model, "messages": [dict(m) for m in messages],
                                      "temperature": s.temperature, "max_tokens": s.max_tokens}
            fmt = self._response_format(mode, schema, schema_name)
            if fmt is not None:
                kwargs["response_format"] = fmt
            tries += 1
            try:
                resp = self.client.chat.completions.create(**kwargs)
            except (openai.BadRequestError, openai.UnprocessableEntityError) as e:
                if mode != "text" and _ABOUT_FORMAT.search(str(e)) and self._downgrade(mode):
                    notes.append(f"{mode} refused ({self._short(e)}); falling back to {self.mode}")
                    log.info("endpoint refused %s output; falling back to %s", mode, self.mode)
                    continue
                raise BackendError(f"endpoint rejected the request: {self._short(e)}",
                                   time.perf_counter() - t0) from None
            except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError,
                    openai.APIStatusError) as e:
                status = getattr(e, "status_code", None)
                if status is not None and mode != "text" and _ABOUT_FORMAT.search(str(e)) and self._downgrade(mode):
                    notes.append(f"{mode} refused ({self._short(e)}); falling back to {self.mode}")
                    log.info("endpoint refused %s output; falling back to %s", mode, self.mode)
                    continue
                retryable = status is None or status == 429 or status >= 500
                if not retryable:
                    raise BackendError(f"endpoint error: {self._short(e)}", time.perf_counter() - t0) from None
                if retries >= s.max_retries:
                    raise BackendError(f"endpoint failed after {retries + 1} tries: {self._short(e)}",
                                       time.perf_counter() - t0) from None
                delay = s.backoff_s * 2 ** retries
                if isinstance(e, openai.APIStatusError):
                    delay = max(delay, min(_retry_after(e) or 0.0, 60.0))
                retries += 1
                notes.append(f"try {tries} failed ({self._short(e)}); retrying in {delay:.2g}s")
                log.info("endpoint try %d failed (%s); retrying in %.2gs", tries, self._short(e), delay)
                self._sleep(delay)
                continue
            except (openai.OpenAIError, ValueError, TypeError, RecursionError) as e:  # unreadable: HTML, empty, cut
                # off, or nested too deeply to parse
                raise BackendError(f"endpoint answer unusable: {self._short(e)}",
                                   time.perf_counter() - t0) from None
            latency = time.perf_counter() - t0
            text = self._content(resp, latency)
            usage = _get(resp, "usage")
            return Completion(text=text, mode=mode, latency_s=latency, tries=tries,
                              prompt_tokens=_tokens(usage, "prompt_tokens"),
                              completion_tokens=_tokens(usage, "completion_tokens"), notes=tuple(notes))

    def _content(self, resp: Any, latency: float) -> str:
        """The answer's text; :class:`BackendError` when the body is not a chat completion."""
        choices = _get(resp, "choices")
        if not isinstance(choices, list):
            raise BackendError(f"endpoint answer unusable: not a chat completion (got {type(resp).__name__} "
                               f"{cap(self._redact(one_line(repr(resp))), 120)})", latency)
        if not choices:
            return ""
        content = _get(_get(choices[0], "message"), "content")
        if content is None:
            return ""
        if not isinstance(content, str):
            raise BackendError(f"endpoint answer unusable: the message content is a {type(content).__name__}, "
                               "not text", latency)
        return content

    def close(self) -> None:
        self.client.close()
