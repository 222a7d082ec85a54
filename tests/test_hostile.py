"""Hostile endpoints: every answer becomes a rejection, a CONTINUE or a BackendError; nothing crashes.

The fuzz tests generate hostile responses with hypothesis (>= 1,000 in all, counted)
and serve them from a real local HTTP server to the real ``openai`` client.
"""

from __future__ import annotations

import json

import pytest
from fake_openai_server import FakeOpenAI, decision
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from searchmgr.decision import RejectionKind, verify
from searchmgr.managers.openai_backend import BackendError, BackendSettings, ChatBackend
from searchmgr.sanitize import MAX_ANSWER_CHARS, MAX_FIELD_CHARS, MAX_SHORT_CHARS
from searchmgr.stoppers import StopContext
from searchmgr.stoppers.llm import LLMStopper, parse_stop
from searchmgr.tasks import make_task

TOY = make_task("toy", {"preset": "smoke"})
PARENT = TOY.base_recipe()
MSG = [{"role": "user", "content": "hi"}]
DEEP = "[" * 10_000 + "]" * 10_000  # 20 kB: under the size cap, far past the recursion limit
def fuzz(n: int) -> settings:
    return settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def backend(url: str, **kw) -> ChatBackend:
    return ChatBackend(BackendSettings(base_url=url, model="fake", timeout_s=5, max_retries=0, backoff_s=0, **kw))


def completion(content) -> dict:
    return {"id": "x", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}]}


def check_verdict(raw) -> None:
    """verify() answers anything with a verdict; an admitted recipe is inside the surface."""
    v = verify(raw, TOY.surface, PARENT)
    if v.ok:
        assert TOY.surface.check(v.recipe) == v.recipe
        assert all(k.step_ok(PARENT[k.name], v.recipe[k.name]) or PARENT[k.name] == v.recipe[k.name]
                   for k in TOY.surface.knobs)
        assert len(v.decision.diagnosis) <= MAX_FIELD_CHARS
    else:
        assert len(v.rejection.reason) <= MAX_FIELD_CHARS


def check_stop(text) -> None:
    parsed = parse_stop(text)
    assert parsed is None or (isinstance(parsed[0], bool) and len(parsed[1]) <= MAX_SHORT_CHARS)


# the findings, one by one ------------------------------------------------------------------

def test_deeply_nested_json_is_rejected_not_a_recursion_error():
    v = verify(DEEP, TOY.surface, PARENT)
    assert v.rejection.kind is RejectionKind.MALFORMED_JSON
    nested = '{"diagnosis": ' + "[" * 10_000 + "]" * 10_000 + "}"
    assert verify(nested, TOY.surface, PARENT).rejection.kind is RejectionKind.MALFORMED_JSON
    assert parse_stop(DEEP) is None and parse_stop('{"verdict": ' + "[" * 10_000 + "]" * 10_000 + "}") is None


@pytest.mark.parametrize("item", [
    {"raw": b"<html><body>502 Bad Gateway</body></html>", "content_type": "text/html"},
    {"raw": b"", "content_type": "application/json"},
    {"raw": json.dumps(completion("hi")).encode()[:40], "content_type": "application/json"},
    {"raw": b"[1, 2, 3]"}, {"raw": b'"just a string"'}, {"raw": b"null"}, {"raw": DEEP.encode()},
    {"raw": json.dumps(completion({"a": 1})).encode()},
    {"raw": json.dumps({**completion("x"), "choices": "no"}).encode()},
])
def test_unusable_200_bodies_are_backend_errors(item):
    with FakeOpenAI([item]) as srv:
        with pytest.raises(BackendError, match="unusable"):
            backend(srv.base_url).complete(MSG)


def test_a_context_length_400_does_not_downgrade_the_output_mode():
    too_long = {"status": 400, "message": "This model's maximum context length is 8192 tokens. However, you "
                "requested 9000 tokens. Please reduce the length of the messages."}
    with FakeOpenAI([too_long, "fine"]) as srv:
        b = backend(srv.base_url)
        with pytest.raises(BackendError, match="maximum context length"):
            b.complete(MSG, schema={"type": "object"})
        assert b.mode == "json_schema"
        assert b.complete(MSG, schema={"type": "object"}).mode == "json_schema"
    assert len(srv.requests) == 2  # no fallback request was made


def test_a_huge_answer_is_rejected_and_long_fields_are_capped():
    huge = decision([{"knob": "dropout", "op": "add", "value": 0.05}], diagnosis="x" * 1_000_000)
    assert verify(huge, TOY.surface, PARENT).rejection.kind is RejectionKind.TOO_LONG
    long = json.dumps({"diagnosis": "d" * 15_000, "control_audit": [], "expected_outcome": "e" * 5_000,
                       "watch_items": ["w" * 2_000] * 3, "updates": [{"knob": "dropout", "op": "add", "value": 0.05}]})
    v = verify(long, TOY.surface, PARENT)
    assert v.ok and len(v.decision.diagnosis) <= MAX_FIELD_CHARS and len(v.decision.expected_outcome) <= MAX_FIELD_CHARS
    assert all(len(w) <= MAX_SHORT_CHARS for w in v.decision.watch_items)
    assert len(json.dumps(v.decision.model_dump())) < 3 * MAX_FIELD_CHARS + 3 * MAX_SHORT_CHARS + 500


def test_llm_stopper_counts_hostile_answers_as_continue():
    ctx = StopContext(5, 2, 40, 0, 100, 40, TOY.objective, ((20, 2.0), (30, 2.1), (40, 2.2)), 1.0, 1.0)
    script = [DEEP, {"raw": b"<html>oops</html>", "content_type": "text/html"}, {"raw": b"{\"choices\": [{"},
              json.dumps({"verdict": "STOP", "reason": "r" * 100_000})]
    with FakeOpenAI(script) as srv:
        s = LLMStopper(BackendSettings(base_url=srv.base_url, model="fake", timeout_s=5, max_retries=0,
                                       backoff_s=0), asynchronous=False, every_evals=1)
        verdicts = [s.should_stop(ctx) for _ in script]
        s.close()
    assert [v.stop for v in verdicts] == [False] * 4  # the last answer is too long to be read at all
    assert all(v.record for v in verdicts)


# fuzzing -------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20)
KEYS = ["diagnosis", "control_audit", "updates", "expected_outcome", "watch_items", "knob", "op", "value", "verdict",
        "reason"]
decision_like = st.fixed_dictionaries({}, optional={
    "diagnosis": json_values, "control_audit": json_values, "expected_outcome": json_values,
    "watch_items": json_values, "verdict": st.sampled_from(["STOP", "CONTINUE", "stop", 1, None]),
    "reason": json_values,
    "updates": st.lists(st.fixed_dictionaries({}, optional={
        "knob": st.sampled_from(["lr", "dropout", "weight_decay", "nope", "", 3]),
        "op": st.sampled_from(["scale", "add", "hold", "mul", None]),
        "value": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.text(max_size=5),
                           st.just(10 ** 400))}), max_size=5),
})


@st.composite
def hostile_text(draw) -> str:
    """An answer's text: prose, fenced or truncated JSON, decision-shaped junk, deep nesting, huge or binary."""
    kind = draw(st.integers(0, 6))
    if kind == 0:
        return draw(st.text(max_size=200))
    body = json.dumps(draw(decision_like | json_values), allow_nan=True)
    if kind == 1:
        return body
    if kind == 2:
        return f"Sure:\n```json\n{body}\n```\n" + draw(st.text(max_size=20))
    if kind == 3:
        return body[:draw(st.integers(0, max(len(body) - 1, 0)))]
    if kind == 4:
        depth = draw(st.integers(900, 5_000))
        return '{"diagnosis": ' + "[" * depth + "]" * depth + "}"
    if kind == 5:
        return body + " " * draw(st.integers(MAX_ANSWER_CHARS - len(body) - 5, MAX_ANSWER_CHARS + 5))
    return "\x1b]0;title\x07\x1b[2J" + body + "\x00\x7f"


@st.composite
def hostile_response(draw) -> dict:
    """A whole HTTP answer: status, content type and body, well-formed or not."""
    status = draw(st.sampled_from([200, 200, 200, 200, 201, 400, 401, 404, 413, 422, 429, 500, 503]))
    ctype = draw(st.sampled_from(["application/json", "application/json", "text/html", "text/plain", ""]))
    kind = draw(st.integers(0, 5))
    if kind == 0:
        body = json.dumps(completion(draw(hostile_text()))).encode()
    elif kind == 1:
        body = json.dumps(completion(draw(json_values))).encode()
    elif kind == 2:
        whole = completion(draw(st.text(max_size=30)))
        whole[draw(st.sampled_from(["choices", "usage", "object", "error"]))] = draw(json_values)
        body = json.dumps(whole).encode()
    elif kind == 3:
        body = draw(st.binary(max_size=200))
    elif kind == 4:
        full = json.dumps(completion(draw(hostile_text()))).encode()
        body = full[:draw(st.integers(0, len(full)))]
    else:
        body = draw(st.sampled_from([b"<html><script>alert(1)</script></html>", b"", b"null", DEEP.encode()[:20_000]]))
    return {"status": status, "content_type": ctype, "raw": body}


def test_fuzz_backend_and_verifier_over_http():
    seen = []
    with FakeOpenAI() as srv:
        b = backend(srv.base_url)

        @fuzz(500)
        @given(hostile_response())
        def one(item):
            seen.append(item["status"])
            srv.script.append(item)
            try:
                c = b.complete(MSG, schema={"type": "object"})
            except BackendError:
                return
            check_verdict(c.text)
            check_stop(c.text)

        one()
        b.close()
    assert len(seen) >= 500 and 200 in seen


def test_fuzz_verifier_and_stopper_parser():
    seen = []

    @fuzz(500)
    @given(hostile_text() | decision_like)
    def one(raw):
        seen.append(1)
        check_verdict(raw)
        if isinstance(raw, str):
            check_stop(raw)

    one()
    assert len(seen) >= 500
