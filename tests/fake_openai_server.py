"""A local HTTP server that speaks the chat-completions API and answers from a script.

Used by the LLM manager, stopper and replay tests and by ``scripts/bench_latency.py``.
Every request is recorded (path, JSON body, Authorization header). Each request takes
the next item of the script; when the script is exhausted, ``default(body)`` answers.
A script item is either a string (the answer's content) or a dict:

``{"content": str}``                          an answer (``"usage": [prompt, completion]`` optional)
``{"status": 500}`` / ``{"status": 429}``      an error status (``"retry_after": seconds``, ``"message"`` optional)
``{"sleep": 2.0, "content": ...}``            answer after sleeping (past the client's timeout: a timeout)
``{"content": ""}``                           an empty answer
``{"no_choices": True}``                      a completion without choices
``{"raw": b"...", "content_type": "text/html", "status": 200}``  these bytes as the whole body (hostile answers)

``modes`` lists the ``response_format`` types the server accepts (``text`` = no
response_format, ``json_object_schema`` = json_object with a schema, as llama.cpp);
others get a 400, like servers without structured output.
``delay`` is added to every answer (a slow endpoint).
"""

from __future__ import annotations

import json
import threading
from collections import deque
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable

Item = str | dict


class FakeOpenAI:
    def __init__(self, script: Iterable[Item] = (), default: Callable[[dict], Item] | None = None,
                 delay: float = 0.0,
                 modes: Iterable[str] = ("json_schema", "json_object_schema", "json_object", "text")):
        self.script = list(script)
        self.default = default or (lambda body: {"status": 500})
        self.delay = delay
        self.modes = set(modes)
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle ------------------------------------------------------------------------
    def start(self) -> "FakeOpenAI":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                fake._answer(self, body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    # answering -----------------------------------------------------------------------
    def _next(self, body: dict) -> Item:
        with self._lock:
            if self.script:
                return self.script.pop(0)
        return self.default(body)

    def _answer(self, h: BaseHTTPRequestHandler, body: dict) -> None:
        rf = body.get("response_format") or {}
        fmt = rf.get("type", "text") + ("_schema" if rf.get("type") == "json_object" and "schema" in rf else "")
        with self._lock:
            self.requests.append({"path": h.path, "body": body, "authorization": h.headers.get("authorization"),
                                  "time": time.time()})
        if not h.path.endswith("/chat/completions"):
            return self._send(h, 404, {"error": {"message": f"no route {h.path}", "type": "not_found"}})
        if fmt not in self.modes:
            return self._send(h, 400, {"error": {"message": f"response_format {fmt} is not supported",
                                                 "type": "invalid_request_error"}})
        item = self._next(body)
        if isinstance(item, str):
            item = {"content": item}
        time.sleep(self.delay + float(item.get("sleep", 0.0)))
        if "raw" in item:
            return self._send_bytes(h, item.get("status", 200), item["raw"], item.get("content_type", "application/json"))
        if "status" in item:
            headers = {"retry-after": str(item["retry_after"])} if "retry_after" in item else {}
            message = item.get("message", f"scripted {item['status']}")
            return self._send(h, item["status"], {"error": {"message": message, "type": "server_error"}}, headers)
        prompt, completion = item.get("usage", (100, 50))
        choices = [] if item.get("no_choices") else [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": item["content"]}}]
        self._send(h, 200, {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "fake"), "choices": choices,
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        })

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, payload: dict, headers: dict | None = None) -> None:
        FakeOpenAI._send_bytes(h, status, json.dumps(payload).encode(), "application/json", headers)

    @staticmethod
    def _send_bytes(h: BaseHTTPRequestHandler, status: int, data: bytes, content_type: str,
                    headers: dict | None = None) -> None:
        try:
            h.send_response(status)
            h.send_header("content-type", content_type)
            h.send_header("content-length", str(len(data)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and hung up: expected in tests
            pass


def decision(updates: list[dict], diagnosis: str = "scripted diagnosis", knobs: Iterable[str] = ()) -> str:
    """A decision JSON string for scripts."""
    return json.dumps({
        "diagnosis": diagnosis,
        "control_audit": [{"knob": k, "verdict": "deferred", "reason": "scripted"} for k in knobs],
        "updates": updates,
        "expected_outcome": "scripted expectation",
        "watch_items": ["val/loss"],
    })


TOY_MOVES = [
    [{"knob": "dropout", "op": "add", "value": 0.05}],
    [{"knob": "weight_decay", "op": "add", "value": 0.05}],
    [{"knob": "lr", "op": "scale", "value": 0.8}],
    [{"knob": "lr", "op": "scale", "value": 1.25}],
    [{"knob": "dropout", "op": "add", "value": 0.05}, {"knob": "lr", "op": "scale", "value": 0.9}],
    [{"knob": "weight_decay", "op": "add", "value": 0.03}, {"knob": "dropout", "op": "add", "value": 0.02}],
]


def cycling_toy_answers() -> Callable[[dict], Item]:
    """A default answerer for the toy task: valid-looking moves in turn (duplicates get rejected and retried)."""
    counter = iter(range(10 ** 9))
    lock = threading.Lock()

    def answer(body: dict) -> Item:
        with lock:
            i = next(counter)
        return decision(TOY_MOVES[i % len(TOY_MOVES)], f"cycling move {i}")

    return answer


def check_trained(run_dir, trained: list[dict]) -> list:
    """Assert that every recipe that reached training is admissible; return the run's nodes.

    ``trained`` holds the recipes a spy on ``train_segment`` saw. Every trained node's
    recipe must pass the action surface and the step limits from its parent's recipe (start points,
    which uct.start=anywhere places anywhere within bounds, excepted)
    and differ from its earlier siblings, and the spy must have seen only such recipes.
    """
    from pathlib import Path

    from searchmgr.store import TreeStore
    from searchmgr.surface import same_recipe
    from searchmgr.tasks import make_task

    with TreeStore(Path(run_dir) / "tree.db") as store:
        row = store.search()
        nodes = store.nodes(row["id"])
    surface = make_task(row["task"], row["config"]["task_options"]).surface
    by_id = {n.id: n for n in nodes}
    admitted = []
    for n in nodes:
        if n.parent_id is None:
            continue
        assert surface.check(n.recipe) == n.recipe, n
        parent = by_id[n.parent_id].recipe
        for k in surface.knobs:
            bounded = k.step_ok(parent[k.name], n.recipe[k.name]) or parent[k.name] == n.recipe[k.name]
            assert bounded or n.source == "start", (n, k.name)
        earlier = [s for s in nodes if s.parent_id == n.parent_id and s.id < n.id]
        assert not any(same_recipe(s.recipe, n.recipe) for s in earlier), f"node {n.id} duplicates a sibling"
        admitted.append(n.recipe)
    assert trained, "nothing was trained"
    for r in trained:
        surface.check(r)
        assert any(same_recipe(r, a) for a in admitted), f"{r} reached training without being admitted"
    return nodes


def _parse_recipe(text: str) -> dict[str, float]:
    out = {}
    for part in text.split(", "):
        k, _, v = part.partition("=")
        try:
            out[k.strip()] = float(v)
        except ValueError:
            pass
    return out


def surface_reading_answers() -> Callable[[dict], Item]:
    """An answerer that, like a careful model, reads the knobs, the current recipe and the siblings from the
    prompt and proposes one legal, untried move. It proves the prompt carries what a valid answer needs."""
    import math
    import re

    knob_re = re.compile(r"^- (\w+): range \[([^,]+), ([^\]]+)\], (integer, )?(log|linear) scale .*?"
                         r"step limit per transition: (?:scale by a factor in \[[^,]+, ([^\]]+)\]|change by at most "
                         r"([0-9.e+-]+))", re.M)

    def answer(body: dict) -> Item:
        system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
        if "early stopper" in system:
            return json.dumps({"verdict": "CONTINUE", "reason": "surface reader never stops"})
        knobs = [(m[1], float(m[2]), float(m[3]), bool(m[4]), m[5], float(m[6] or m[7]))
                 for m in knob_re.finditer(system)]
        lines = user.splitlines()
        current = _parse_recipe(lines[lines.index(next(l for l in lines if l.startswith("## Current recipe"))) + 1])
        siblings = [_parse_recipe(l.split("): ", 1)[1].rsplit(" [", 1)[0]) for l in lines
                    if l.startswith("- node ") and "): " in l and " [" in l]
        for frac in (0.5, 0.25):
            for name, low, high, integer, scale, limit in knobs:
                for direction in (1, -1):
                    cur = current[name]
                    if scale == "log":
                        factor = (1 + frac * (limit - 1)) ** direction
                        new, update = cur * factor, {"knob": name, "op": "scale", "value": factor}
                    else:
                        delta = direction * max(frac * limit, 1.0 if integer else 0.0)
                        new, update = cur + delta, {"knob": name, "op": "add", "value": delta}
                    if integer:
                        new = float(round(new))
                        update = {"knob": name, "op": "add", "value": new - cur}
                    if not (low <= new <= high) or math.isclose(new, cur):
                        continue
                    child = {**current, name: new}
                    if any(all(math.isclose(child[k], s.get(k, math.nan), rel_tol=1e-3, abs_tol=1e-9) for k in child)
                           for s in siblings):
                        continue
                    return decision([update], f"surface reader: move {name}", [k[0] for k in knobs])
        return decision([], "surface reader: nothing left to try")

    return answer


def always_stop() -> Callable[[dict], Item]:
    return lambda body: json.dumps({"verdict": "STOP", "reason": "scripted: always stop"})


_SHARED: dict[str, FakeOpenAI] = {}


def shared_server(name: str, default: Callable[[dict], Item]) -> FakeOpenAI:
    """A fake endpoint started once per test session (daemon threads; it dies with the process)."""
    if name not in _SHARED:
        _SHARED[name] = FakeOpenAI(default=default).start()
    return _SHARED[name]


class _RecordingReplay:
    """Conformance double for ``replay``: the heuristic plays the original run, the replay answers from its record."""

    def __new__(cls):
        from searchmgr.managers.heuristic import HeuristicManager
        from searchmgr.managers.replay import Answer, ReplayManager

        class RecordingReplay(ReplayManager):
            def propose(self, ctx, feedback=()):
                original = HeuristicManager().propose(ctx, feedback)
                key = (ctx.parent_id, len(ctx.siblings), len(feedback))
                self.queues.setdefault(key, deque()).append(Answer(None, "accepted", json.dumps(original.raw)))
                return super().propose(ctx, feedback)

        return RecordingReplay({}, original="heuristic")


def conformance_factories() -> tuple[dict, dict]:
    """Factories of the LLM-side managers and stoppers for tests/managers/test_conformance.py."""
    from searchmgr.managers.llm import LLMManager
    from searchmgr.managers.model_llm import ModelLLMManager
    from searchmgr.managers.openai_backend import BackendSettings
    from searchmgr.stoppers.llm import LLMStopper
    from searchmgr.stoppers.replay import ReplayStopper

    def backend(name, default):
        return BackendSettings(base_url=shared_server(name, default).base_url, model="fake", timeout_s=5,
                               max_retries=0, backoff_s=0)

    managers = {"openai": lambda: LLMManager(backend("reader", surface_reading_answers())),
                "model_llm": lambda: ModelLLMManager(backend("chooser", lambda body: json.dumps(
                    {"choice": 1, "reason": "the model's pick"}))),
                "replay": _RecordingReplay}
    stoppers = {"llm": lambda: LLMStopper(backend("stopper", always_stop()), asynchronous=False),
                "replay": lambda: ReplayStopper({})}
    return managers, stoppers
