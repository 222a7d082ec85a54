"""The LLM prompt specification, versioned and hashed, and the rendering of runtime context.

The manager's system prompt is the *specification*, in three parts followed by the
required schema:

1. task-family guidance (supervised, rl, grpo): what to read in that family's telemetry;
2. the task's problem description (the task's own words; it never names the failure mode);
3. the action surface: each knob's range, scale, step limit, role, intended effect and caution;
4. the decision's JSON schema and the rules of an update.

It depends only on the task, so it is identical for every request of a run; its
:func:`spec_hash` goes into every decision trace next to :data:`MANAGER_PROMPT_VERSION`.
The user message is the *runtime context* of the parent, rendered compactly from
:meth:`ProposalContext.to_dict` (already summarised by deterministic code), plus the
verifier's reasons when earlier attempts were rejected.

The stopper has its own small specification (:func:`stopper_system_prompt`) with the
rules of early stopping, and a user message with the segment's validation trajectory.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Mapping, Sequence

from searchmgr.decision import decision_schema
from searchmgr.surface import ActionSurface, Scale
from searchmgr.objective import Family, Objective

MANAGER_PROMPT_VERSION = "manager/3"  # 2: the objective line names a tie-break; 3: admissible ranges per request
STOPPER_PROMPT_VERSION = "stopper/3"  # 2: the score to beat is named with the step it is judged at; 3: its rank among
# comparable segments and the rule stopper's projection

FAMILY_GUIDANCE: dict[Family, str] = {
    Family.SUPERVISED: (
        "This is supervised training. Read the validation metric first: only it decides. Compare it with the "
        "training loss: training improving while validation worsens (a growing train/validation gap) means the "
        "model memorises; both improving means training is healthy; both flat means a plateau; non-finite or "
        "exploding losses mean instability. Slopes are per 100 steps over the recent evaluations; a small "
        "sustained slope matters more than one noisy point. Regularization knobs trade training fit for "
        "generalisation; the learning rate sets the speed of fitting and the risk of instability."),
    Family.RL: (
        "This is reinforcement learning. The validation score is measured on held-out evaluation episodes and "
        "only it decides. Read the episode return and success rate with their slopes, the policy's action noise "
        "or entropy (how much it explores), constraint signals such as collision or penalty rates, and the "
        "update size (KL, clip fraction) when given. No progress with tiny action noise means exploration has "
        "stopped; many constraint violations with large noise means behaviour is careless; a jump in update "
        "size followed by a drop in return means the updates are too large."),
    Family.GRPO: (
        "This is reinforcement learning of a language model with group-relative rewards (GRPO). Validation "
        "accuracy decides. Read the mean reward and the reward spread within groups: when every completion in "
        "a group scores the same, the group carries no learning signal (spread near zero). Read the KL "
        "divergence from the reference model: a fast-growing KL means the policy drifts; read completion "
        "lengths: truncated completions cannot be rewarded. Sampling temperature and the number of generations "
        "set the spread; the KL coefficient and learning rate set how far one update moves the policy."),
}

DECISION_RULES = """\
How to write updates:
- Each update names one knob of the action surface and an op:
  "scale" multiplies the current value by `value` (0.5 halves it, 1.5 raises it by half),
  "add" adds `value` to the current value (negative to lower it),
  "hold" keeps it. Knobs you do not list are held.
- The new value must stay inside the knob's range and within its step limit from the CURRENT value.
  Use "scale" for log-scale knobs and "add" for linear ones.
- Do not repeat a recipe already tried from this parent (listed as siblings); propose something different.
- An empty "updates" list keeps the recipe unchanged (only useful if no sibling already did that).
- control_audit has one entry per knob: "selected" (changed), "rejected" (considered and refused) or
  "deferred" (not now), each with a short reason.
- expected_outcome says what the next evaluation should show if the diagnosis is right.
Answer with ONE JSON object and nothing else."""


def _num(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v).lower() if isinstance(v, bool) else "-"
    if isinstance(v, (int, float)):
        if isinstance(v, float) and not math.isfinite(v):
            return str(v)
        return f"{v:.4g}"
    return str(v)


def render_surface(surface: ActionSurface) -> str:
    lines = []
    for k in surface.knobs:
        kind = "integer, " if k.integer else ""
        op = "scale" if k.scale is Scale.LOG else "add"
        line = (f"- {k.name}: range [{k.low:g}, {k.high:g}], {kind}{k.scale.value} scale (use \"{op}\"), "
                f"step limit per transition: {k.step_limit_text()}; role: {k.role.value}; effect: {k.effect}")
        if k.caution:
            line += f"; caution: {k.caution}"
        lines.append(line)
    lines += [f"- constraint: {c.text()}" for c in surface.constraints]
    return "\n".join(lines)


def example_decision(surface: ActionSurface) -> dict:
    """A format example for this surface (one knob moved by a small, legal step)."""
    k = surface.knobs[0]
    if k.scale is Scale.LOG:
        update = {"knob": k.name, "op": "scale", "value": round(1 + k.max_step / 2, 3)}
    else:
        update = {"knob": k.name, "op": "add", "value": round(k.max_step * (k.high - k.low) / 2, 4)}
    return {
        "diagnosis": "<what the telemetry shows, one or two sentences>",
        "control_audit": [{"knob": n.name, "verdict": "selected" if n is k else "deferred",
                           "reason": "<why>"} for n in surface.knobs],
        "updates": [update],
        "expected_outcome": "<what the next evaluation should show>",
        "watch_items": ["<signal to check next time>"],
    }


def _compact(schema: Any) -> Any:
    """The schema without pydantic's ``title`` keys (tokens a model does not need)."""
    if isinstance(schema, dict):
        return {k: _compact(v) for k, v in schema.items() if not (k == "title" and isinstance(v, str))}
    if isinstance(schema, list):
        return [_compact(v) for v in schema]
    return schema


def render_objective(objective: Objective) -> str:
    text = f"Objective: {objective.direction.value} {objective.metric} at the end of the schedule."
    if objective.tiebreak is not None:
        tb = objective.tiebreak
        text += f" Schedules with equal {objective.metric} are ranked by {tb.metric} ({tb.direction.value})."
    return text


def _task_parts(family: Family, description: str, surface: ActionSurface, objective: Objective) -> list[str]:
    """The task's part of a specification: family guidance, the problem, the action surface."""
    return ["## Task family guidance\n" + FAMILY_GUIDANCE.get(family, FAMILY_GUIDANCE[Family.SUPERVISED]),
            "## The problem\n" + description.strip() + "\n" + render_objective(objective),
            "## The action surface (nothing else can change)\n" + render_surface(surface)]


def manager_system_prompt(family: Family, description: str, surface: ActionSurface, objective: Objective) -> str:
    """The manager's specification for one task (see the module docstring)."""
    schema = json.dumps(_compact(decision_schema()), separators=(",", ":"))
    example = json.dumps(example_decision(surface), separators=(", ", ": "))
    return "\n\n".join([
        "You are the training manager of a search over training schedules. Training runs in segments; after "
        "each segment you read its telemetry and propose the recipe of the next segment as bounded relative "
        "updates of a few knobs. A verifier checks every proposal; an invalid one is rejected and never trained.",
        *_task_parts(family, description, surface, objective),
        "## Required answer\n" + DECISION_RULES
        + "\nJSON schema of the answer:\n" + schema
        + "\nFormat example (placeholders in <>; choose your own knobs and values):\n" + example,
    ])


def spec_hash(text: str) -> str:
    """Short sha256 of a prompt specification, stored with every decision it produced."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _recipe(r: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_num(v)}" for k, v in r.items())


def _updates(updates: Sequence[Mapping[str, Any]] | None) -> str:
    if not updates:
        return "hold all"
    out = []
    for u in updates:
        if u.get("op") == "hold":
            out.append(f"{u.get('knob')} hold")
        else:
            out.append(f"{u.get('knob')} {'x' if u.get('op') == 'scale' else '+'}{_num(u.get('value'))}")
    return ", ".join(out)


def render_context(ctx: Mapping[str, Any], feedback: Sequence[str] = (), extra: str = "") -> str:
    """The runtime context (``ProposalContext.to_dict()``) as a compact user message; ``extra`` (a chooser's
    candidates) goes before the closing line."""
    obj = ctx["objective"]
    child, parent, t = ctx["child"], ctx["parent"], ctx["telemetry"]
    lines = [
        f"# Propose the recipe of the next segment (steps {child['steps'][0]}-{child['steps'][1]}, "
        f"segment {child['depth']} of {child['max_depth']}; training budget left: {ctx['budget_left_steps']} steps)",
        f"Objective: {obj['direction']} {obj['metric']}.",
        "",
        f"## Current recipe (parent node {parent['node']})",
        _recipe(parent["recipe"]),
        "",
        "## Telemetry along the path so far (summarised)",
    ]
    if not t.get("evals"):
        lines.append("no evaluation yet (this is the first segment)")
    else:
        lines.append("last values: " + ", ".join(f"{k}={_num(v)}" for k, v in t["last"].items()))
        lines.append("slopes per 100 steps (recent evaluations): "
                     + ", ".join(f"{k}={_num(v)}" for k, v in t["slopes"].items()))
        if t.get("gap") is not None:
            lines.append(f"train/validation gap: {_num(t['gap'])} (positive: validation worse), "
                         f"gap slope per 100 steps: {_num(t.get('gap_slope'))}")
        if t.get("best") is not None:
            lines.append(f"best {obj['metric']} on this path: {_num(t['best'])}, "
                         f"{t.get('steps_since_best')} steps ago")
        flags = [f for f in ("plateau", "diverged", "overfitting") if t.get(f)]
        lines.append("flags: " + (", ".join(flags) if flags else "none"))
    lines += ["", "## Path from the root (each segment: recipe, the decision that made it, what happened)"]
    if not ctx["path"]:
        lines.append("none: the parent is the untrained root")
    for p in ctx["path"]:
        obs = ", ".join(f"{k}={_num(v)}" for k, v in (p.get("observed") or {}).items()
                        if not k.startswith("test/"))
        lines.append(f"- node {p['node']} steps {p['steps'][0]}-{p['steps'][1]}: {_recipe(p['recipe'])}")
        if p.get("diagnosis"):
            lines.append(f"  decision: {p['diagnosis']} -> {_updates(p.get('updates'))}; "
                         f"expected: {p.get('expected_outcome') or '-'}")
        lines.append(f"  observed at its end: {obs or '-'}")
    lines += ["", "## Siblings already tried from this parent (propose something different)"]
    if not ctx["siblings"]:
        lines.append("none yet")
    for s in ctx["siblings"]:
        lines.append(f"- node {s['node']} ({s['status']}, {obj['metric']}={_num(s['val_score'])}): "
                     f"{_recipe(s['recipe'])} [{_updates(s.get('updates'))}]")
    if feedback:
        lines += ["", "## Your earlier answers for this parent were rejected by the verifier"]
        lines += [f"- attempt {i + 1}: {r}" for i, r in enumerate(feedback)]
        lines.append("Fix these problems in your new answer.")
    if extra:
        lines += ["", extra]
    lines += ["", "Answer with the JSON object only."]
    return "\n".join(lines)


# the chooser among the model's candidates (model_llm) ---------------------------------------

CHOOSER_PROMPT_VERSION = "chooser/2"  # 2: no example answer (SmolLM2 copied chooser/1's example, id 1, every time)


def chooser_system_prompt(family: Family, description: str, surface: ActionSurface, objective: Objective,
                          own: bool) -> str:
    """The chooser's specification: the task's parts, then how to pick among the model's ranked candidates."""
    rules = [
        "How to answer:",
        "- Pick the candidate child most likely to give the best final score: answer its id as \"choice\" and say "
        "why in \"reason\" (one sentence).",
        "- Candidates are listed best first by the model's upper confidence bound (predicted score plus its "
        "uncertainty). The model only knows the recipes and scores; you also see the telemetry (overfitting, "
        "plateau, divergence). Follow the model unless the telemetry speaks against its pick; a large ± means "
        "the model is unsure.",
    ]
    if own:
        rules.append("- If no candidate fits what the telemetry shows, answer \"choice\": \"own\" with your own "
                     "\"updates\" (every knob once, in the listed order; each within its admissible range).")
    return "\n\n".join([
        "You are the training manager of a search over training schedules. Training runs in segments; before each "
        "segment a model fitted on this run's own evidence (every scored segment) ranks candidate recipes for the "
        "next segment. You choose one of them. Every candidate is a bounded, verified change of the current recipe.",
        *_task_parts(family, description, surface, objective),
        "## Required answer\n" + "\n".join(rules) + "\nAnswer with ONE JSON object and nothing else, with the keys "
        "\"choice\" (the id you pick, a number) and \"reason\" (your own words).",
    ])


def render_candidates(rows: Sequence[Mapping[str, Any]], points: int, metric: str, direction: str) -> str:
    """The model's top candidates (``id``, ``change``, ``predicted``, ``sd``, ``source``) as prompt lines."""
    better = "lower" if direction == "minimize" else "higher"
    lines = [f"## Candidate children, best first by the model (a GP fitted on {points} scored segments of this "
             f"run; {better} {metric} is better)"]
    for r in rows:
        lines.append(f"- id {r['id']}: {r['change']}; predicted {metric} {_num(r['predicted'])} ± {_num(r['sd'])} "
                     f"(from {points} segments); source: {r['source']}")
    lines.append(f"Choose one id of {[r['id'] for r in rows]}.")
    return "\n".join(lines)


# the early stopper ------------------------------------------------------------------------

STOP_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["STOP", "CONTINUE"]},
        "reason": {"type": "string"},
    },
    "required": ["verdict", "reason"],
    "additionalProperties": False,
}


def stopper_system_prompt() -> str:
    return "\n\n".join([
        "You are the early stopper of a search over training schedules. A training segment is running; you see "
        "its validation trajectory so far, the best score any finished segment reached at the same end step, and, "
        "when there are any, its rank among comparable segments (finished, at the same depth, after as many "
        "evaluations) and the rule stopper's optimistic projection of its curve. "
        "Decide whether to STOP this segment now (its compute goes to other branches) or let it CONTINUE.",
        "Rules:\n"
        "- Only the validation score decides; ignore training loss.\n"
        "- You are only asked after the segment's minimum step; never stop because the segment is young.\n"
        "- STOP only when the trajectory has no realistic chance to beat the best by the end of the segment. "
        "Judge by its slope, not only its current value: a worse value that is still improving fast may catch "
        "up; a flat or worsening trajectory that is behind will not.\n"
        "- A segment in the upper half of its comparable segments should CONTINUE; one near the bottom whose "
        "optimistic projection still misses the best is a good STOP.\n"
        "- When in doubt, CONTINUE.",
        "Answer with ONE JSON object and nothing else, in this schema:\n"
        + json.dumps(STOP_SCHEMA, separators=(",", ":"))
        + '\nExample: {"verdict": "CONTINUE", "reason": "still improving fast enough to reach the best"}',
    ])


def render_stop_context(ctx: Mapping[str, Any], rate: float | None, projected: float | None,
                        needed_rate: float | None, standing: Mapping[str, Any] | None = None,
                        rule_projection: float | None = None) -> str:
    """The segment's trajectory and what it has to beat (``StopContext.to_dict()`` plus slope figures), its
    ``standing`` among comparable segments (:func:`searchmgr.stoppers.llm.standing`) and the rule stopper's
    projection."""
    better = "lower" if ctx["direction"] == "minimize" else "higher"
    traj = ", ".join(f"step {s}: {_num(v)}" for s, v in ctx["trajectory"])
    judged_at = ctx["judged_at"]
    lines = [
        f"Metric: {ctx['metric']} ({better} is better). Segment: steps {ctx['segment'][0]}-{ctx['segment'][1]}; "
        f"now at step {ctx['step']} (minimum step {ctx['min_step']} reached).",
        f"Validation trajectory of this segment: {traj}",
        f"Best {ctx['metric']} reached at step {judged_at} (the score to beat): {_num(ctx['best_at_depth'])}",
        f"Best complete schedule so far: {_num(ctx['best_overall'])}",
    ]
    if rate is not None:
        lines.append(f"Recent slope: {_num(rate)} per 100 steps; a straight-line projection reaches "
                     f"{_num(projected)} at step {judged_at}.")
    if needed_rate is not None:
        lines.append(f"To match the best by step {judged_at} it would need a slope of {_num(needed_rate)} "
                     "per 100 steps from now on.")
    if standing is not None:
        line = (f"Rank among comparable segments (finished, same depth, after {standing['evaluation']} evaluations): "
                f"{standing['rank']} of {standing['of']} (1 = best).")
        if standing.get("best_final") is not None:
            line += (f" Their scores at the segment's end: best {_num(standing['best_final'])}, "
                     f"median {_num(standing['median_final'])}.")
        lines.append(line)
    if rule_projection is not None:
        lines.append(f"The rule stopper's optimistic projection (its best recent trend, improvements only) reaches "
                     f"{_num(rule_projection)} at step {judged_at}.")
    lines.append("STOP or CONTINUE? Answer with the JSON object only.")
    return "\n".join(lines)
