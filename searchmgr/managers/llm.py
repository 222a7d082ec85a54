"""``openai``: a bounded LLM manager behind any OpenAI-compatible chat-completions endpoint.

The system prompt is the task's prompt specification (:mod:`searchmgr.prompts`,
versioned and hashed); the user message is the parent's runtime context plus the
verifier's reasons for earlier rejected attempts. The answer is returned *raw*: the
search's verifier parses it (fences and prose tolerated) and decides. Endpoint
failures after the backend's bounded retries raise :class:`ManagerError`, so the
search records them and lets the fallback manager decide.

The trace of every request keeps the prompt version and hash, the context and
feedback sent, the output mode, retries, latency and token counts. The full
specification text is put in the trace of the first request that used it, so a
run's store holds every prompt it sent without repeating it; the API key never
appears anywhere.
"""

from __future__ import annotations

import threading
from typing import ClassVar, Literal, Sequence

from searchmgr.decision import decision_schema
from searchmgr.managers.base import Manager, ManagerError, Proposal, ProposalContext
from searchmgr.managers.openai_backend import BackendError, BackendSettings, ChatBackend, Completion
from searchmgr.prompts import MANAGER_PROMPT_VERSION, manager_system_prompt, render_context, spec_hash
from searchmgr.request_schema import render_ranges, request_schema

ResponseSchema = Literal["request", "generic", "choice"]  # choice: model_llm's answer (a candidate id)


class LLMManager(Manager):
    name = "openai"
    slow: ClassVar[bool] = True  # answers take seconds: the coordinator asks ahead while segments train

    def __init__(self, settings: BackendSettings, backend: ChatBackend | None = None,
                 response_schema: ResponseSchema = "request"):
        self.settings = settings
        self.backend = backend or ChatBackend(settings)
        self.response_schema = response_schema
        self._specs: dict[tuple, tuple[str, str]] = {}
        self._sent: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config) -> "LLMManager":
        return cls(BackendSettings.from_manager_config(config.manager),
                   response_schema=config.manager.response_schema)

    def schema(self, ctx: ProposalContext) -> dict:
        """The response schema sent with this request: per request (what is admissible for ``ctx``'s parent,
        :mod:`searchmgr.request_schema`) or the generic decision schema."""
        if self.response_schema == "generic":
            return decision_schema()
        return request_schema(ctx.surface, ctx.parent_recipe, [s.recipe for s in ctx.siblings])

    def system_prompt(self, ctx: ProposalContext) -> str:
        """The specification sent as the system message (a subclass may send another one)."""
        return manager_system_prompt(ctx.family, ctx.description, ctx.surface, ctx.objective)

    def spec(self, ctx: ProposalContext) -> tuple[str, str]:
        """(specification text, hash) for the context's task (cached)."""
        key = (ctx.task, ctx.family, ctx.description, ctx.surface.fingerprint(), ctx.objective)
        with self._lock:
            if key not in self._specs:
                text = self.system_prompt(ctx)
                self._specs[key] = (text, spec_hash(text))
            return self._specs[key]

    def ask(self, system: str, user: str, schema: dict, schema_name: str) -> Completion:
        """One request; an endpoint failure raises :class:`ManagerError` (with the time spent on it)."""
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        try:
            return self.backend.complete(messages, schema=schema, schema_name=schema_name)
        except BackendError as e:
            err = ManagerError(str(e))
            err.latency_s = e.latency_s  # the search records how long the endpoint was tried
            raise err from None

    def traced(self, context: dict, feedback: Sequence[str], c: Completion, system: str, digest: str) -> dict:
        """What the trace records about a request: the context, the feedback, the endpoint, the spec (once)."""
        request = {**context, "feedback": list(feedback),
                   "endpoint": {"model": self.settings.model, "output_mode": c.mode, "tries": c.tries,
                                "response_schema": self.response_schema, "notes": list(c.notes)}}
        with self._lock:
            if digest not in self._sent:
                self._sent.add(digest)
                request["prompt_spec"] = system
        return request

    def propose(self, ctx: ProposalContext, feedback: Sequence[str] = ()) -> Proposal:
        system, digest = self.spec(ctx)
        context = ctx.to_dict()
        user = render_context(context, feedback)
        if self.response_schema == "request":
            user += ("\n\nAdmissible updates from the current recipe (list every knob once, in this order):\n"
                     + render_ranges(ctx.surface, ctx.parent_recipe))
        c = self.ask(system, user, self.schema(ctx), "decision")
        return Proposal(raw=c.text, source=self.name, prompt_version=MANAGER_PROMPT_VERSION, prompt_hash=digest,
                        latency_s=c.latency_s, prompt_tokens=c.prompt_tokens,
                        completion_tokens=c.completion_tokens,
                        request=self.traced(context, feedback, c, system, digest))

    def close(self) -> None:
        self.backend.close()
