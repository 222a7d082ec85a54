"""The ``openai`` manager against a scripted local chat-completions server (no network, no model)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fake_openai_server import FakeOpenAI, check_trained, cycling_toy_answers, decision
from rich.console import Console

from searchmgr.managers import ManagerError, manager_class
from searchmgr.managers.llm import LLMManager
from searchmgr.managers.openai_backend import BackendError, BackendSettings, ChatBackend
from searchmgr.progress import ConsoleReporter
from searchmgr.prompts import MANAGER_PROMPT_VERSION, manager_system_prompt, render_context, spec_hash
from searchmgr.search import explore
from searchmgr.store import DecisionKind, TreeStore
from searchmgr.tasks import Family, make_task
from searchmgr.tasks.toy import ToyTask
from searchmgr.traces import render_decisions

FAST = ["task=toy", "preset=smoke", "segment_steps=10", "eval_every=5", "max_depth=2", "budget.steps=80",
        "manager.name=openai", "manager.backoff_s=0", "manager.timeout_s=1", "manager.max_retries=1",
        'stopper.name="none"',  # quoted: a bare none parses as None (reported to the lead)
        # every child from the manager under test (not from the policy's start points or holds): the scripted
        # answers are spent one per child, and the tests count the manager's decisions against the nodes trained
        "uct.start=bounded", "uct.hold_first=false"]
MSG = [{"role": "user", "content": "hi"}]
GOOD = decision([{"knob": "dropout", "op": "add", "value": 0.05}])


def settings(url: str, **kw) -> BackendSettings:
    base = dict(base_url=url, model="fake", timeout_s=1.0, max_retries=2, backoff_s=0.0)
    return BackendSettings(**{**base, **kw})


@pytest.fixture
def spy(monkeypatch):
    """Record every recipe that reaches the toy task's training loop."""
    seen: list[dict] = []
    original = ToyTask.train_segment

    def train_segment(self, checkpoint, recipe, segment, on_eval):
        seen.append(dict(recipe))
        return original(self, checkpoint, recipe, segment, on_eval)

    monkeypatch.setattr(ToyTask, "train_segment", train_segment)
    return seen


def decisions(run: Path, kind=DecisionKind.MANAGER):
    with TreeStore(run / "tree.db") as store:
        return [d for d in store.decisions(store.search()["id"]) if d.kind is kind]


# the backend ------------------------------------------------------------------------------

def test_backend_falls_back_from_json_schema_to_json_mode_to_text():
    with FakeOpenAI(["a", "b"], modes=("text",)) as srv:
        b = ChatBackend(settings(srv.base_url))
        first = b.complete(MSG, schema={"type": "object"})
        second = b.complete(MSG, schema={"type": "object"})
    assert (first.text, first.mode, first.tries) == ("a", "text", 4)
    assert (second.text, second.tries) == ("b", 1)  # the working mode is remembered
    sent = [r["body"].get("response_format") for r in srv.requests]
    assert sent[0] == {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"},
                                                              "strict": False}}
    assert sent[1:] == [{"type": "json_object", "schema": {"type": "object"}}, {"type": "json_object"}, None, None]


@pytest.mark.parametrize("modes, expected", [(("json_object", "text"), "json_object"),
                                             (("json_object_schema", "json_object", "text"), "json_object_schema")])
def test_backend_stops_at_the_first_mode_the_server_supports(modes, expected):
    with FakeOpenAI(["a"], modes=modes) as srv:
        c = ChatBackend(settings(srv.base_url)).complete(MSG, schema={"type": "object"})
    assert c.mode == expected


def test_backend_treats_a_server_error_naming_response_format_as_a_refusal():
    # llama-cpp-python answers an unknown response_format type with a 500 that names the field
    refusal = {"status": 500, "message": "body.response_format.type: Input should be 'text' or 'json_object'"}
    with FakeOpenAI([refusal, "a"]) as srv:
        c = ChatBackend(settings(srv.base_url, max_retries=0)).complete(MSG, schema={"type": "object"})
    assert (c.text, c.mode, c.tries) == ("a", "json_object_schema", 2)


def test_backend_retries_500_429_and_timeouts_with_backoff():
    slept: list[float] = []
    script = [{"status": 500}, "after 500", {"status": 429, "retry_after": 0.05}, "after 429",
              {"sleep": 1.5, "content": "too late"}, "after timeout"]
    with FakeOpenAI(script) as srv:
        b = ChatBackend(settings(srv.base_url, timeout_s=0.5, backoff_s=0.01), sleep=slept.append)
        texts = [b.complete(MSG).text for _ in range(3)]
    assert texts == ["after 500", "after 429", "after timeout"]
    assert slept[0] == pytest.approx(0.01) and slept[1] == pytest.approx(0.05)  # Retry-After wins when larger


def test_backend_gives_up_after_bounded_retries():
    with FakeOpenAI(default=lambda body: {"status": 503}) as srv:
        b = ChatBackend(settings(srv.base_url, max_retries=2))
        with pytest.raises(BackendError, match="after 3 tries") as e:
            b.complete(MSG)
    assert len(srv.requests) == 3
    assert e.value.latency_s is not None


def test_backend_does_not_retry_client_errors():
    with FakeOpenAI([{"status": 401}]) as srv:
        with pytest.raises(BackendError, match="AuthenticationError"):
            ChatBackend(settings(srv.base_url, output="text")).complete(MSG)
    assert len(srv.requests) == 1


def test_backend_errors_never_carry_the_key(monkeypatch):
    monkeypatch.setenv("MY_LLM_KEY", "sk-live-abcdef123456")
    echo = {"status": 401, "message": "Incorrect API key provided: sk-live-abcdef123456 (sk-liv***3456)"}
    with FakeOpenAI([echo]) as srv:
        with pytest.raises(BackendError) as e:
            ChatBackend(settings(srv.base_url, api_key_env="MY_LLM_KEY")).complete(MSG)
    assert "abcdef" not in str(e.value) and "3456" not in str(e.value) and "Incorrect API key" in str(e.value)


def test_backend_sends_the_key_from_the_named_variable_only(monkeypatch):
    monkeypatch.setenv("MY_LLM_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-one")
    with FakeOpenAI(["a"]) as srv:
        ChatBackend(settings(srv.base_url, api_key_env="MY_LLM_KEY")).complete(MSG)
    assert srv.requests[0]["authorization"] == "Bearer sk-from-env"


# the prompt specification ---------------------------------------------------------------

def test_prompt_spec_has_guidance_problem_surface_and_schema():
    task = make_task("toy", {"preset": "smoke"})
    text = manager_system_prompt(task.family, task.description, task.surface, task.objective)
    assert text.index("Task family guidance") < text.index("The problem") < text.index("action surface") \
        < text.index("Required answer")
    assert "supervised training" in text and task.description.strip() in text
    for k in task.surface.knobs:
        assert f"- {k.name}: range [{k.low:g}, {k.high:g}]" in text and k.step_limit_text() in text
    assert '"control_audit"' in text and '"expected_outcome"' in text
    assert spec_hash(text) == spec_hash(text) and len(spec_hash(text)) == 16
    rl = manager_system_prompt(Family.RL, task.description, task.surface, task.objective)
    assert spec_hash(rl) != spec_hash(text)


def test_manager_sends_spec_context_and_feedback_and_traces_the_request():
    task = make_task("toy", {"preset": "smoke"})
    from searchmgr.managers.base import ProposalContext
    from searchmgr.telemetry import summarize

    ctx = ProposalContext(task="toy", family=task.family, description=task.description,
                          objective=task.objective, surface=task.surface, parent_id=3,
                          parent_recipe=task.base_recipe(), depth=2, max_depth=3, start_step=20, end_step=40,
                          telemetry=summarize([(10, {"train/loss": 0.5, "val/loss": 0.6}),
                                               (20, {"train/loss": 0.3, "val/loss": 0.65})], task.objective),
                          path=(), siblings=(), budget_left_steps=100, seed=0)
    with FakeOpenAI([GOOD, {"content": "not json", "usage": [321, 7]}]) as srv:
        m = LLMManager(settings(srv.base_url))
        first = m.propose(ctx)
        second = m.propose(ctx, ["out_of_bounds: dropout too big"])
    system, user = srv.requests[0]["body"]["messages"]
    assert system["role"] == "system" and "action surface" in system["content"]
    assert "parent node 3" in user["content"] and "overfitting" in user["content"]
    assert "out_of_bounds: dropout too big" in srv.requests[1]["body"]["messages"][1]["content"]
    assert first.raw == GOOD and first.prompt_version == MANAGER_PROMPT_VERSION
    assert first.prompt_hash == spec_hash(system["content"])
    assert "prompt_spec" in first.request and "prompt_spec" not in second.request  # the spec is stored once
    assert (second.prompt_tokens, second.completion_tokens) == (321, 7) and second.latency_s > 0
    assert second.request["feedback"] == ["out_of_bounds: dropout too big"]


def test_manager_raises_manager_error_when_the_endpoint_is_down():
    with FakeOpenAI(default=lambda body: {"status": 500}) as srv:
        m = manager_class("openai")(settings(srv.base_url, max_retries=1))
        with pytest.raises(ManagerError, match="after 2 tries"):
            m.propose(_ctx())


def _ctx():
    from searchmgr.managers.base import ProposalContext
    from searchmgr.telemetry import summarize

    task = make_task("toy", {"preset": "smoke"})
    return ProposalContext(task="toy", family=task.family, description=task.description, objective=task.objective,
                           surface=task.surface, parent_id=1, parent_recipe=task.base_recipe(), depth=1, max_depth=2,
                           start_step=0, end_step=10, telemetry=summarize([], task.objective), path=(), siblings=(),
                           budget_left_steps=80, seed=0)


def test_render_context_lists_siblings_and_path():
    ctx = _ctx().to_dict()
    ctx["siblings"] = [{"node": 5, "recipe": {"lr": 0.002}, "status": "done", "val_score": 0.4,
                        "updates": [{"knob": "lr", "op": "scale", "value": 2.0}]}]
    text = render_context(ctx)
    assert "node 5 (done, val/loss=0.4): lr=0.002 [lr x2]" in text
    assert "no evaluation yet" in text


# whole searches against a hostile server ----------------------------------------------------

HOSTILE = [
    "I think you should raise dropout a bit.",                                   # prose, no JSON
    '{"diagnosis": "overfit", "updates": [',                                      # truncated JSON
    decision([{"knob": "lr", "op": "scale", "value": 100.0}]),                    # far out of bounds
    decision([{"knob": "momentum", "op": "add", "value": 0.1}]),                  # unknown knob
    {"content": ""},                                                              # empty answer
    {"no_choices": True},                                                         # no choices at all
    {"sleep": 3.0, "content": GOOD}, {"sleep": 3.0, "content": GOOD},            # timeouts past every retry
    {"status": 500}, {"status": 500},                                             # 500s past every retry
    {"status": 429}, "Sure! Here it is:\n```json\n" + GOOD + "\n```\nHope it helps.",  # 429, then fenced JSON
    decision([{"knob": "dropout", "op": "add", "value": 0.45}]),                  # too large a step
    decision([{"knob": "weight_decay", "op": "scale", "value": 2.0}]),            # 0 x 2: a duplicate hold
]
SECRET = "sk-test-SECRET-4f1d2c9e"


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """One search against the hostile script, with a secret key set."""
    mp = pytest.MonkeyPatch()
    seen: list[dict] = []
    original = ToyTask.train_segment

    def train_segment(self, checkpoint, recipe, segment, on_eval):
        seen.append(dict(recipe))
        return original(self, checkpoint, recipe, segment, on_eval)

    mp.setattr(ToyTask, "train_segment", train_segment)
    mp.setenv("SEARCHMGR_SECRET_KEY", SECRET)
    out = tmp_path_factory.mktemp("hostile") / "run"
    buf = io.StringIO()
    try:
        with FakeOpenAI(list(HOSTILE), default=cycling_toy_answers()) as srv:
            outcome = explore(FAST + [f"manager.base_url={srv.base_url}", f"out={out}",
                                      "manager.api_key_env=SEARCHMGR_SECRET_KEY"],
                              reporter=ConsoleReporter(Console(file=buf, width=200)))
    finally:
        mp.undo()
    return {"out": out, "outcome": outcome, "seen": seen, "server": srv, "printed": buf.getvalue()}


def test_hostile_server_never_gets_an_invalid_recipe_into_training(hostile_run):
    out, outcome = hostile_run["out"], hostile_run["outcome"]
    assert "budget" in outcome.stop_reason or "exhausted" in outcome.stop_reason
    nodes = check_trained(out, hostile_run["seen"])
    assert sum(n.depth > 0 for n in nodes) >= 6
    ds = decisions(out)
    reasons = " ".join(d.reason or "" for d in ds)
    for kind in ("malformed_json", "out_of_bounds", "unknown_knob", "step_too_large"):
        assert kind in reasons, kind
    assert any(d.verdict == "error" or "manager error" in (d.reason or "") for d in ds)  # timeouts and 500s
    assert any(d.verdict == "accepted" and "```json" in (d.raw_response or "") for d in ds)  # fenced JSON parsed
    llm = [d for d in ds if d.source == "openai"]
    assert all(d.prompt_hash and d.prompt_version == MANAGER_PROMPT_VERSION for d in llm if d.raw_response)
    assert all(d.latency_s is not None for d in llm if d.verdict != "stale" or d.raw_response)
    assert all(d.applied == (d.child_id is not None) for d in ds)
    assert all(not d.applied for d in ds if d.verdict != "accepted")


def test_api_key_never_reaches_store_files_or_output(hostile_run):
    srv = hostile_run["server"]
    assert srv.requests and all(r["authorization"] == f"Bearer {SECRET}" for r in srv.requests)
    for path in hostile_run["out"].rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in hostile_run["printed"]
    with TreeStore(hostile_run["out"] / "tree.db") as store:
        text = render_decisions(store, store.search()["id"])
    assert SECRET not in text
    assert "SEARCHMGR_SECRET_KEY" in (hostile_run["out"] / "config.json").read_text()  # the name is fine


def test_decision_trace_shows_attempts_and_nodes(hostile_run):
    with TreeStore(hostile_run["out"] / "tree.db") as store:
        text = render_decisions(store, store.search()["id"])
    assert "manager openai:" in text and "latency median" in text and "tokens" in text
    assert "diagnosis:" in text and "updates:" in text and "expected:" in text and "next eval: step" in text
    assert "rejected" in text and "malformed_json" in text


def test_rejected_three_times_then_the_fallback_decides_and_a_dead_endpoint_falls_back(tmp_path, spy):
    bad = [decision([{"knob": "lr", "op": "scale", "value": 50.0}]),
           decision([{"knob": "nope", "op": "add", "value": 1.0}]), "no json here"]
    with FakeOpenAI(bad, default=lambda body: {"status": 500}) as srv:  # then the endpoint dies for good
        outcome = explore(FAST + [f"manager.base_url={srv.base_url}", f"out={tmp_path / 'run'}",
                                  "budget.steps=50"])
    check_trained(tmp_path / "run", spy)
    ds = decisions(tmp_path / "run")
    first = [d for d in ds if d.source == "openai"][:3]
    assert [d.verdict for d in first] == ["rejected"] * 3
    assert [d.attempt for d in first] == [0, 1, 2]
    # the rejected answers went back to the model with the verifier's reasons
    assert "out_of_bounds" in srv.requests[1]["body"]["messages"][1]["content"]
    assert "unknown_knob" in srv.requests[2]["body"]["messages"][1]["content"]
    fallback = [d for d in ds if d.source == "heuristic (fallback)" and d.applied]
    # every child but the fixed recipe's (one node or more: uct.fixed=start grows it like any other schedule)
    assert len(fallback) == sum(n.depth > 0 and n.source != "fixed" for n in check_trained(tmp_path / "run", spy))
    assert any(d.verdict == "error" and "after 2 tries" in d.reason for d in ds)
    assert outcome.nodes_trained >= 5
    with TreeStore(tmp_path / "run" / "tree.db") as store:
        text = render_decisions(store, store.search()["id"])
    assert "heuristic (fallback)" in text and "ERROR" in text
