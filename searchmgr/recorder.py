"""One place where decisions enter the store: a typed trace per manager attempt or stopper verdict."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from searchmgr.store import DecisionKind, TreeStore, DecisionVerdict


@dataclass(frozen=True)
class Trace:
    """One request and what became of it (the columns of the ``decisions`` table)."""

    kind: DecisionKind
    source: str
    node_id: int | None  # the parent (manager) or the training segment (stopper)
    verdict: DecisionVerdict
    reason: str | None = None
    rejection: str | None = None  # RejectionKind value when the verifier rejected
    context: Any = None
    raw_response: str | None = None
    parsed: Any = None
    attempt: int = 0
    prompt_version: str | None = None
    prompt_hash: str | None = None
    latency_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    applied: bool = False
    # a supervised run's answers (searchmgr.supervise): the telemetry snapshot's step, the recipe version asked
    # about, and the step where the answer was applied
    snapshot_step: int | None = None
    recipe_version: int | None = None
    applied_step: int | None = None

    @classmethod
    def of_attempt(cls, attempt, n: int, source: str, parent_id: int, context: Mapping[str, Any]) -> "Trace":
        """A manager attempt (:class:`searchmgr.attempts.Attempt`): error, rejected or accepted."""
        if attempt.proposal is None:
            return cls(DecisionKind.MANAGER, source, parent_id, DecisionVerdict.ERROR, reason=attempt.error,
                       context=dict(context), attempt=n, latency_s=attempt.error_latency_s)
        p, v = attempt.proposal, attempt.verdict
        verdict = DecisionVerdict.ACCEPTED if v.ok else DecisionVerdict.REJECTED
        return cls(DecisionKind.MANAGER, source, parent_id, verdict,
                   reason=None if v.ok else str(v.rejection),
                   rejection=None if v.ok else v.rejection.kind.value,
                   context=dict(p.request or context),
                   raw_response=p.raw if isinstance(p.raw, str) else json.dumps(p.raw, default=str),
                   parsed=v.decision.model_dump() if v.decision else None, attempt=n,
                   prompt_version=p.prompt_version, prompt_hash=p.prompt_hash, latency_s=p.latency_s,
                   prompt_tokens=p.prompt_tokens, completion_tokens=p.completion_tokens)

    @classmethod
    def of_stop(cls, verdict, source: str, node_id: int, context: Mapping[str, Any], applied: bool) -> "Trace":
        """A stopper's verdict (:class:`searchmgr.stoppers.StopVerdict`) at one evaluation."""
        t = verdict.trace
        return cls(DecisionKind.STOPPER, source, node_id, DecisionVerdict.STOP if applied else DecisionVerdict.CONTINUE,
                   reason=verdict.reason, context=t.get("context") or dict(context), raw_response=t.get("raw"),
                   latency_s=t.get("latency_s"), prompt_version=t.get("prompt_version"),
                   prompt_hash=t.get("prompt_hash"), prompt_tokens=t.get("prompt_tokens"),
                   completion_tokens=t.get("completion_tokens"), applied=applied)


class Recorder:
    def __init__(self, store: TreeStore, search_id: int):
        self.store = store
        self.search_id = search_id

    def record(self, trace: Trace) -> int:
        fields = asdict(trace)
        kind, source, node_id = fields.pop("kind"), fields.pop("source"), fields.pop("node_id")
        return self.store.add_decision(self.search_id, node_id, kind, source, **fields)
