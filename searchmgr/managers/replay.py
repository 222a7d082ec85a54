"""``replay``: re-run a search from the decision traces of an earlier run, without its LLM.

The manager answers each request with the response the original run recorded for the
same request: the same parent, the same number of children already tried from it,
the same attempt (``len(feedback)``), in the order they were recorded. Recorded
endpoint errors are replayed as :class:`ManagerError` (so the fallback decides again,
as it did), and requests the original never made (or prefetched answers it dropped as
stale) have no answer: a :class:`ManagerError` says so and the fallback decides.
With the same seed and configuration the replayed tree is the original tree.

``replay_config`` builds a replay's configuration from the original run's stored one
(``searchmgr explore manager.name=replay manager.replay=RUN out=NEW``): same task,
seed, segments, budget, UCT and fallback; an ``llm`` stopper becomes the ``replay``
stopper (:mod:`searchmgr.stoppers.replay`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from searchmgr.config import ConfigError, merge
from searchmgr.managers.base import Manager, ManagerError, Proposal, ProposalContext
from searchmgr.rundir import DB_NAME, RunNotFound, open_run
from searchmgr.store import DecisionKind, DecisionRecord, TreeStore

REPLAYED_VERDICTS = ("accepted", "rejected", "error")
LLM_STOPPERS = ("llm", "replay")


def _open(run_dir: Path) -> TreeStore:
    try:
        return open_run(run_dir)
    except RunNotFound:
        raise ConfigError(f"cannot replay {run_dir}: it is not a run directory (no {DB_NAME}); "
                          "give manager.replay=<out= of an earlier explore>") from None


def load_trace(run_dir: Path) -> tuple[dict, list[DecisionRecord]]:
    """The original run's stored config and all its decisions, in order."""
    store = _open(run_dir)
    try:
        row = store.search()
        return row["config"], store.decisions(row["id"])
    finally:
        store.close()


def replay_config(overrides: Mapping[str, Any]) -> dict:
    """The nested config of a replay of ``overrides['manager']['replay']``; ``overrides`` win over the original."""
    src = Path(overrides["manager"]["replay"])
    stored, _ = load_trace(src)
    base = {k: stored[k] for k in ("task", "seed", "segment_steps", "max_depth", "eval_every", "budget", "uct",
                                   "stopper", "task_options") if k in stored}
    base["manager"] = {**stored["manager"], "name": "replay", "replay": str(src)}
    if stored["stopper"]["name"] in LLM_STOPPERS:
        base["stopper"] = {**stored["stopper"], "name": "replay"}
    return merge(base, overrides)


@dataclass(frozen=True)
class Answer:
    """A recorded manager answer (the parts a replay needs of a stored decision)."""

    decision_id: int | None
    verdict: str
    raw: str
    reason: str | None = None
    prompt_version: str | None = None
    prompt_hash: str | None = None
    latency_s: float | None = None

    @classmethod
    def of(cls, d: DecisionRecord) -> "Answer":
        return cls(d.id, d.verdict, d.raw_response or "", d.reason, d.prompt_version, d.prompt_hash, d.latency_s)


Key = tuple[int, int, int]  # (parent node id, children already tried from it, attempt)


def answers_of(decisions: Sequence[DecisionRecord], original: str) -> dict[Key, list[Answer]]:
    """The original manager's answers that the search used (stale prefetches and fallbacks left out), by request."""
    out: dict[Key, list[Answer]] = {}
    for d in decisions:
        if d.kind is not DecisionKind.MANAGER or d.source != original or d.verdict not in REPLAYED_VERDICTS:
            continue
        siblings = len((d.context or {}).get("siblings", []))
        out.setdefault((d.node_id, siblings, d.attempt), []).append(Answer.of(d))
    return out


class ReplayManager(Manager):
    name = "replay"

    def __init__(self, answers: Mapping[Key, Sequence[Answer]], original: str = "openai", origin: str = "memory"):
        self.original = original
        self.origin = origin
        self.queues: dict[Key, deque[Answer]] = {k: deque(v) for k, v in answers.items()}
        self.replayed = 0

    @classmethod
    def from_run(cls, run_dir: Path) -> "ReplayManager":
        stored, decisions = load_trace(Path(run_dir))
        original = stored["manager"]["name"]
        return cls(answers_of(decisions, original), original, str(run_dir))

    @classmethod
    def from_config(cls, config) -> "ReplayManager":
        return cls.from_run(config.manager.replay)

    def propose(self, ctx: ProposalContext, feedback: Sequence[str] = ()) -> Proposal:
        key = (ctx.parent_id, len(ctx.siblings), len(feedback))
        queue = self.queues.get(key)
        if not queue:
            raise ManagerError(f"{self.origin} recorded no {self.original} answer for parent {ctx.parent_id} with "
                               f"{len(ctx.siblings)} children, attempt {len(feedback) + 1}")
        a = queue.popleft()
        self.replayed += 1
        if a.verdict == "error":
            raise ManagerError(f"replayed endpoint error (decision {a.decision_id}): {a.reason}")
        return Proposal(raw=a.raw, source=self.name, prompt_version=a.prompt_version, prompt_hash=a.prompt_hash,
                        latency_s=0.0,
                        request={**ctx.to_dict(), "feedback": list(feedback),
                                 "replayed": {"run": self.origin, "decision": a.decision_id,
                                              "latency_s": a.latency_s}})
