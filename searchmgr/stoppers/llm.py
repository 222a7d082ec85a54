"""``llm``: an early stopper that asks an LLM, under fixed rules, whether a segment can still win.

It uses the manager's endpoint settings (``manager.base_url``, ``manager.model`` ...).
At an evaluation inside a segment it sends the segment's validation trajectory, its
recent slope and straight-line projection, the slope it would need to match the best
segment at the same depth, its rank among comparable segments (``ctx.peers``: finished,
same depth, after as many evaluations; the coordinator passes them with
``stopper.reference=rank``), the rule stopper's optimistic projection
(:meth:`searchmgr.stoppers.rule.RuleStopper.projected`), and the rules (:func:`searchmgr.prompts.stopper_system_prompt`):
never before the minimum step, stop only when the trajectory has no realistic chance
to beat the best judged by its slope, only the validation score decides.

* **Rate limit**: it asks at most every ``every_evals`` evaluations of a segment and at
  most once per ``every_s`` seconds, only after the minimum step, only with two or more
  points of trajectory and only when there is a best to beat.
* **Asynchronous** (default): the request runs in a worker thread and its answer is
  applied at the first evaluation after it arrives, so training never waits for the
  endpoint. An answer that arrives after its segment ended is dropped (and logged).
* **Invalid answers count as CONTINUE** (of any shape or size: :func:`parse_stop`
  never raises; reasons are capped), as do endpoint failures; every answer is
  returned with ``record=True`` and a trace (raw text, latency, prompt version and
  hash, tokens, the context sent), so the search stores it like a manager decision.
"""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from searchmgr.decision import extract_json
from searchmgr.managers.openai_backend import BackendError, BackendSettings, ChatBackend
from searchmgr.prompts import STOP_SCHEMA, STOPPER_PROMPT_VERSION, render_stop_context, spec_hash, stopper_system_prompt
from searchmgr.sanitize import MAX_ANSWER_CHARS, MAX_SHORT_CHARS, cap
from searchmgr.stoppers.base import CONTINUE, StopContext, Stopper, StopVerdict
from searchmgr.stoppers.rule import RuleStopper
from searchmgr.telemetry import slope

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Asked:
    node_id: int
    step: int
    future: Future


def parse_stop(text: str) -> tuple[bool, str] | None:
    """``(stop, reason)`` from an answer (the reason capped), or None when it is not a valid verdict."""
    if not isinstance(text, str) or len(text) > MAX_ANSWER_CHARS:
        return None
    try:
        data = extract_json(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("verdict"), str):
        return None
    verdict = data["verdict"].strip().upper()
    if verdict not in ("STOP", "CONTINUE"):
        return None
    reason = data.get("reason")
    reason = cap(reason.strip(), MAX_SHORT_CHARS) if isinstance(reason, str) and reason.strip() else "(no reason given)"
    return verdict == "STOP", reason


def standing(ctx: StopContext) -> dict[str, Any] | None:
    """Where the segment stands among its peers (``ctx.peers``: finished, same depth) after as many evaluations:
    its rank (1 = best) of how many, and the best and median of their scores at the segment's end (metric units);
    None without a peer evaluated that far."""
    u, i = ctx.objective.utility, len(ctx.trajectory) - 1
    here = [p.values[i] for p in ctx.peers if len(p.values) > i and math.isfinite(p.values[i])]
    if i < 0 or not here:
        return None
    current = u(ctx.trajectory[-1][1])
    out: dict[str, Any] = {"rank": 1 + sum(u(h) > current for h in here), "of": len(here) + 1, "evaluation": i + 1,
                           "best_final": None, "median_final": None}
    finals = sorted((p.final for p in ctx.peers if p.final is not None and math.isfinite(p.final)), key=u,
                    reverse=True)
    if finals:
        out.update(best_final=finals[0], median_final=finals[len(finals) // 2])
    return out


def _as_metric(ctx: StopContext, utility: float) -> float:
    """A utility back on the metric's own scale (minimised metrics are negated utilities)."""
    return utility if ctx.objective.direction.value == "maximize" else -utility


def trend(ctx: StopContext, window: int) -> tuple[float | None, float | None, float | None]:
    """(slope per 100 steps over the last ``window`` points, projection at the step the reference is judged at
    (the segment's end by default), slope needed to match the reference there), all in metric units."""
    pts = ctx.trajectory[-window:]
    if len(pts) < 2:
        return None, None, None
    rate = slope(pts)
    step, value = pts[-1]
    remaining = max(ctx.judged_at - step, 0)
    projected = value + rate * remaining
    needed = None
    if ctx.best_at_depth is not None and remaining > 0:
        needed = 100.0 * (ctx.best_at_depth - value) / remaining
    return 100.0 * rate, projected, needed


class LLMStopper(Stopper):
    name = "llm"

    def __init__(self, settings: BackendSettings, *, every_evals: int = 2, every_s: float = 0.0,
                 asynchronous: bool = True, window: int = 3, backend: ChatBackend | None = None):
        self.settings = settings
        self.backend = backend or ChatBackend(settings)
        self.every_evals = every_evals
        self.every_s = every_s
        self.asynchronous = asynchronous
        self.window = window
        self.rule = RuleStopper(window=window)  # its projection goes into the request
        self.system = stopper_system_prompt()
        self.digest = spec_hash(self.system)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="searchmgr-stopper")
        self._node: int | None = None
        self._evals_since_ask = 0
        self._asked_once = False
        self._last_ask = -float("inf")
        self._pending: _Asked | None = None
        self.asked = 0
        self.dropped = 0  # answers that arrived after their segment had ended

    @classmethod
    def from_config(cls, config) -> "LLMStopper":
        s = config.stopper
        return cls(BackendSettings.from_manager_config(config.manager), every_evals=s.every_evals,
                   every_s=s.every_s, asynchronous=s.asynchronous, window=s.window)

    # the decision -------------------------------------------------------------------
    def should_stop(self, ctx: StopContext) -> StopVerdict:
        if ctx.node_id != self._node:  # a new segment
            if self._pending is not None:
                self.dropped += 1
                log.info("stopper answer for node %s dropped: its segment ended first", self._pending.node_id)
                self._pending.future.cancel()
                self._pending = None
            self._node, self._evals_since_ask, self._asked_once = ctx.node_id, 0, False
        self._evals_since_ask += 1
        verdict = None
        if self._pending is not None and self._pending.future.done():
            verdict = self._applied(self._pending, ctx)
            self._pending = None
        if self._due(ctx):
            self._evals_since_ask, self._asked_once, self._last_ask = 0, True, time.monotonic()
            self.asked += 1
            if self.asynchronous:
                self._pending = _Asked(ctx.node_id, ctx.step, self.pool.submit(self._ask, ctx))
            else:
                verdict = self._applied(_Asked(ctx.node_id, ctx.step, _done(self._ask(ctx))), ctx)
        return verdict or CONTINUE

    def _due(self, ctx: StopContext) -> bool:
        if ctx.step < ctx.min_step or ctx.best_at_depth is None or len(ctx.trajectory) < 2:
            return False
        if self._pending is not None:
            return False
        if self._asked_once and self._evals_since_ask < self.every_evals:
            return False
        return time.monotonic() - self._last_ask >= self.every_s

    def _ask(self, ctx: StopContext) -> dict[str, Any]:
        """One request (worker thread or inline); returns the verdict's parts and trace."""
        rate, projected, needed = trend(ctx, self.window)
        rank, rule = standing(ctx), _as_metric(ctx, self.rule.projected(ctx))
        sent = ctx.to_dict()
        messages = [{"role": "system", "content": self.system},
                    {"role": "user", "content": render_stop_context(sent, rate, projected, needed, rank, rule)}]
        trace: dict[str, Any] = {"prompt_version": STOPPER_PROMPT_VERSION, "prompt_hash": self.digest,
                                 "context": {**sent, "slope_per_100": rate, "projected": projected,
                                             "needed_slope_per_100": needed, "standing": rank,
                                             "rule_projection": rule}}
        try:
            c = self.backend.complete(messages, schema=STOP_SCHEMA, schema_name="stop_verdict")
        except BackendError as e:
            return {"stop": False, "reason": f"endpoint error, counts as CONTINUE: {e}",
                    "trace": {**trace, "latency_s": e.latency_s}}
        trace.update(raw=c.text, latency_s=c.latency_s, prompt_tokens=c.prompt_tokens,
                     completion_tokens=c.completion_tokens)
        parsed = parse_stop(c.text)
        if parsed is None:
            return {"stop": False, "reason": "invalid answer, counts as CONTINUE", "trace": trace}
        stop, reason = parsed
        return {"stop": stop, "reason": reason, "trace": trace}

    def _applied(self, asked: _Asked, ctx: StopContext) -> StopVerdict:
        answer = asked.future.result()
        trace = dict(answer["trace"])
        trace["context"] = {**trace["context"], "answered_at_step": ctx.step}
        reason = answer["reason"]
        if asked.step != ctx.step:
            reason = f"{reason} (asked at step {asked.step})"
        return StopVerdict(answer["stop"], reason, record=True, trace=trace)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.backend.close()


def _done(value: Any) -> Future:
    f: Future = Future()
    f.set_result(value)
    return f
