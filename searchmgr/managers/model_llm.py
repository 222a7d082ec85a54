"""``model_llm``: the ``openai`` manager choosing among the model's ranked candidates.

A mode of :class:`searchmgr.managers.llm.LLMManager` (same endpoint settings, backend,
traces): the model manager (:mod:`searchmgr.managers.model`) ranks candidate children
by a GP over the run's evidence, and the request carries its top ``manager.top_k``
beside the telemetry — per candidate its id (the model's rank), the recipe change per
knob, the predicted score ± sd and the evidence count
(:func:`searchmgr.prompts.render_candidates`). The answer names one by id; the
per-request schema (:func:`searchmgr.request_schema.choice_schema`) makes ``choice`` an
``enum`` of the ids, so a constrained decoder cannot answer anything else. With
``manager.own=true`` the schema also admits ``choice: "own"`` with the LLM's own bounded
updates (the per-request ``updates`` schema), checked by the verifier like any decision.

An answer that names no candidate (outside the enum, not JSON ...) is passed on as a
non-decision, so the verifier rejects it; the trace's ``chooser`` entry says why, and the
next attempt's prompt says so in plain words. A valid choice becomes that candidate's
recipe. The trace records the candidates shown, the choice, the model's rank of it and
the reason (:mod:`searchmgr.managers.choice`).

With too little evidence for a ranking (fewer than the model's ``min_points`` scored
segments) it takes **the model's prior** (the heuristic's answer) without asking the
endpoint, exactly as ``model`` and ``model_random`` do, so the three differ only where
there is a choice to make.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Sequence

from searchmgr.decision import extract_json
from searchmgr.managers.base import Proposal, ProposalContext
from searchmgr.managers.choice import candidate_rows, chosen, prior
from searchmgr.managers.llm import LLMManager
from searchmgr.managers.model import ModelManager
from searchmgr.managers.openai_backend import BackendSettings, ChatBackend
from searchmgr.prompts import CHOOSER_PROMPT_VERSION, chooser_system_prompt, render_candidates, render_context
from searchmgr.request_schema import OWN, choice_schema, render_ranges, request_schema
from searchmgr.sanitize import MAX_ANSWER_CHARS, MAX_SHORT_CHARS, cap


def _load(text: str) -> Any:
    """The answer's JSON object; raw control characters inside its strings are read too (llama.cpp's grammar let
    SmolLM2 put newlines in its reason on grpo_arith, which made those answers unreadable)."""
    try:
        return extract_json(text)
    except ValueError:
        start, end = text.find("{"), text.rfind("}")
        if 0 <= start < end:
            try:
                return json.loads(text[start:end + 1], strict=False)
            except (ValueError, RecursionError):
                pass
        raise ValueError("no JSON object found in the response") from None


def parse_choice(text: Any, ids: Sequence[int], own: bool) -> tuple[int | str | None, str, Any, str | None]:
    """``(choice, reason, updates, why)`` from an answer: ``why`` is None when ``choice`` is one of ``ids`` (or
    ``"own"`` with updates, where allowed), else it says what is wrong. Never raises."""
    if not isinstance(text, str) or len(text) > MAX_ANSWER_CHARS:
        return None, "", None, f"the answer is not text of at most {MAX_ANSWER_CHARS} characters"
    try:
        data = _load(text)
    except ValueError:
        return None, "", None, "the answer holds no JSON object"
    if not isinstance(data, dict):
        return None, "", None, f"the answer is a JSON {type(data).__name__}, not an object"
    reason = data.get("reason")
    reason = cap(reason.strip(), MAX_SHORT_CHARS) if isinstance(reason, str) and reason.strip() else "(no reason given)"
    choice = data.get("choice")
    if own and choice == OWN:
        updates = data.get("updates")
        if not isinstance(updates, list):
            return None, reason, None, 'choice "own" needs a list of updates'
        return OWN, reason, updates, None
    if isinstance(choice, str) and choice.strip().isdigit():  # "2" from a decoder without the schema
        choice = int(choice.strip())
    if isinstance(choice, float) and choice.is_integer():
        choice = int(choice)
    if isinstance(choice, bool) or not isinstance(choice, int) or choice not in ids:
        allowed = [*ids, OWN] if own else list(ids)
        return None, reason, None, f"choice {cap(repr(choice), 40)} is not one of {allowed}"
    return choice, reason, None, None


class ModelLLMManager(LLMManager):
    """An LLM picks one of the model's top-k candidate children (see the module docstring)."""

    name = "model_llm"

    def __init__(self, settings: BackendSettings, backend: ChatBackend | None = None, *, top_k: int = 5,
                 own: bool = False, kappa: float = 1.0):
        super().__init__(settings, backend, response_schema="choice")
        self.top_k, self.own = top_k, own
        self.model = ModelManager(kappa=kappa)
        self._invalid: dict[tuple[int, int, int], str] = {}  # (parent, siblings, attempt) -> why it named no id
        self._invalid_lock = threading.Lock()

    @classmethod
    def from_config(cls, config) -> "ModelLLMManager":
        m = config.manager
        return cls(BackendSettings.from_manager_config(m), top_k=m.top_k, own=m.own, kappa=m.kappa)

    def system_prompt(self, ctx: ProposalContext) -> str:
        return chooser_system_prompt(ctx.family, ctx.description, ctx.surface, ctx.objective, self.own)

    def _explained(self, ctx: ProposalContext, feedback: Sequence[str]) -> list[str]:
        """The verifier's reasons, with an answer that named no candidate said in plain words."""
        with self._invalid_lock:
            whys = [self._invalid.get((ctx.parent_id, len(ctx.siblings), j)) for j in range(len(feedback))]
        return [f"your answer named no candidate: {why}" if why else f for f, why in zip(feedback, whys)]

    def _user(self, ctx: ProposalContext, rows: list[dict], points: int, feedback: Sequence[str]) -> str:
        extra = render_candidates(rows, points, ctx.objective.metric, ctx.objective.direction.value)
        if self.own:
            extra += ('\n\nOr answer "choice": "own" with your own updates; admissible updates from the current '
                      "recipe (list every knob once, in this order):\n" + render_ranges(ctx.surface, ctx.parent_recipe))
        return render_context(ctx.to_dict(), self._explained(ctx, feedback), extra)

    def propose(self, ctx: ProposalContext, feedback: Sequence[str] = ()) -> Proposal:
        ranking = self.model.ranking(ctx, feedback)
        if ranking is None:
            return prior(self.model, ctx, feedback, self.name)
        rows = candidate_rows(ctx, ranking, self.top_k)
        ids = [r["id"] for r in rows]
        own_updates = None
        if self.own:
            own_updates = request_schema(ctx.surface, ctx.parent_recipe,
                                         [s.recipe for s in ctx.siblings])["properties"]["updates"]
        system, digest = self.spec(ctx)
        c = self.ask(system, self._user(ctx, rows, ranking.points, feedback), choice_schema(ids, own_updates), "choice")
        choice, reason, updates, why = parse_choice(c.text, ids, self.own)
        fields = dict(prompt_version=CHOOSER_PROMPT_VERSION, prompt_hash=digest, latency_s=c.latency_s,
                      prompt_tokens=c.prompt_tokens, completion_tokens=c.completion_tokens)
        request = self.traced(ctx.to_dict(), feedback, c, system, digest)
        chooser = {"name": self.name, "top_k": len(rows), "candidates": rows, "answer": cap(c.text, MAX_SHORT_CHARS)}
        if why is None and choice != OWN:
            return chosen(ctx, ranking, choice - 1, source=self.name, reason=reason, chooser=chooser,
                          request=request, **fields)
        if why is None:  # its own bounded change: the verifier decides
            raw = {"diagnosis": f"{self.name}: its own change, none of the model's top {len(rows)}: {reason}",
                   "control_audit": [], "updates": updates,
                   "expected_outcome": f"{ctx.objective.metric} better than the model's candidates predict",
                   "watch_items": [ctx.objective.metric]}
            chooser.update(choice=OWN, model_rank=None, reason=reason, valid=True)
            return Proposal(raw=raw, source=self.name, request={**request, "chooser": chooser}, **fields)
        with self._invalid_lock:
            self._invalid[(ctx.parent_id, len(ctx.siblings), len(feedback))] = why
        chooser.update(choice=None, model_rank=None, reason=reason, valid=False, why=why)
        # not a decision: the verifier rejects it (and the search records the rejection with this trace)
        return Proposal(raw={"rejected_answer": cap(c.text, MAX_SHORT_CHARS), "why": why}, source=self.name,
                        request={**request, "chooser": chooser}, **fields)
