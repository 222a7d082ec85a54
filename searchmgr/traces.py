"""Readable decision traces: per node, the diagnosis, the updates, the expected outcome and what happened.

``searchmgr show RUN --decisions`` prints :func:`render_decisions`: a summary of every
request (verdicts, latency, tokens), then one block per trained node: the decision
that created it (diagnosis, chosen updates, expected outcome), what its next
evaluation showed next to the parent's last one, the attempts at the same parent
that were rejected, failed or went stale before it (with reasons, latency and
tokens), and the stopper's verdicts on it. Requests that never produced a node
(a closed parent, prefetched answers dropped as stale) are listed at the end.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict

from searchmgr.sanitize import fmt
from searchmgr.store import DecisionKind, DecisionRecord, Node, TreeStore


def _updates(parsed: dict | None) -> str:
    ups = (parsed or {}).get("updates") or []
    if not ups:
        return "hold all"
    return ", ".join(f"{u['knob']} {'x' if u['op'] == 'scale' else '+'}{u['value']:.3g}" if u["op"] != "hold"
                     else f"{u['knob']} hold" for u in ups)


def _cost(d: DecisionRecord) -> str:
    """`` (1.23s, 812+143 tok)`` when known."""
    parts = []
    if d.latency_s is not None:
        parts.append(f"{d.latency_s:.2f}s")
    if d.prompt_tokens is not None or d.completion_tokens is not None:
        parts.append(f"{d.prompt_tokens or 0}+{d.completion_tokens or 0} tok")
    return f" ({', '.join(parts)})" if parts else ""


def _eval_text(step: int, metrics: dict[str, float]) -> str:
    shown = {k: v for k, v in metrics.items() if k.startswith("val/") or k.startswith("train/loss")
             or k.startswith("rl/")}
    return f"step {step}: " + ", ".join(f"{k}={v:.4g}" for k, v in (shown or metrics).items())


def _live(d: DecisionRecord) -> str:
    """Where an answer of a supervised run came from and where it went."""
    text = f"snapshot at step {d.snapshot_step}, recipe version {d.recipe_version}"
    return text + (f", applied at step {d.applied_step}" if d.applied_step is not None else "")


def _attempt_line(d: DecisionRecord) -> str:
    tag = {"rejected": "rejected", "error": "ERROR", "stale": "stale"}.get(d.verdict.value, d.verdict.value)
    where = " (prefetched)" if isinstance(d.context, dict) and d.context.get("prefetched") else ""
    where += f" ({_live(d)})" if d.snapshot_step is not None else ""
    reason = (d.reason or "-").removeprefix(f"{d.verdict.value}: ")
    return f"      {d.source} attempt {d.attempt + 1}{where} {tag}{_cost(d)}: {reason}"


def summary(decisions: list[DecisionRecord]) -> list[str]:
    lines = []
    for kind in (DecisionKind.MANAGER, DecisionKind.STOPPER):
        ds = [d for d in decisions if d.kind is kind and d.source != "fixed"]
        if not ds:
            continue
        by_source = defaultdict(list)
        for d in ds:
            by_source[d.source].append(d)
        for source, group in by_source.items():
            counts = Counter(d.verdict.value for d in group)
            lat = [d.latency_s for d in group if d.latency_s is not None]
            tin = sum(d.prompt_tokens or 0 for d in group)
            tout = sum(d.completion_tokens or 0 for d in group)
            text = f"  {kind.value} {source}: {len(group)} requests (" + ", ".join(
                f"{n} {v}" for v, n in counts.most_common()) + ")"
            if lat:
                text += (f"; latency median {statistics.median(lat):.2f}s, max {max(lat):.2f}s, "
                         f"total {sum(lat):.1f}s")
            if tin or tout:
                text += f"; tokens {tin} in, {tout} out"
            lines.append(text)
    return lines


def render_decisions(store: TreeStore, search_id: int) -> str:
    """The decision traces of a run, grouped per node (see the module docstring)."""
    nodes: dict[int, Node] = {n.id: n for n in store.nodes(search_id)}
    decisions = store.decisions(search_id)
    lines = ["", "decisions"] + summary(decisions)
    # manager requests that came before the accepted one at the same parent
    before: dict[int, list[DecisionRecord]] = {}
    waiting: dict[int, list[DecisionRecord]] = defaultdict(list)
    orphans: list[DecisionRecord] = []
    stale: list[DecisionRecord] = []
    stoppers: dict[int, list[DecisionRecord]] = defaultdict(list)
    for d in decisions:
        if d.kind is DecisionKind.STOPPER:
            stoppers[d.node_id].append(d)
        elif d.verdict == "stale":
            stale.append(d)
        elif d.applied and d.child_id is not None:
            before[d.child_id] = waiting.pop(d.node_id, [])
        else:
            waiting[d.node_id].append(d)
    for ds in waiting.values():
        orphans += ds
    creating = {d.child_id: d for d in decisions if d.kind is DecisionKind.MANAGER and d.applied and d.child_id}
    for node in sorted(nodes.values(), key=lambda n: n.id):
        if node.parent_id is None:
            continue
        d = creating.get(node.id)
        parsed = (d.parsed if d else None) or {}
        parent = nodes.get(node.parent_id)
        lines.append(
            f"  node {node.id} <- {node.parent_id} (depth {node.depth}, steps {node.start_step}-{node.end_step}, "
            f"{node.source}{_cost(d) if d else ''}) -> {node.status.value}, val {fmt(node.val_score)}"
            + (f" (parent {fmt(parent.val_score)})" if parent is not None and parent.val_score is not None else ""))
        for a in before.get(node.id, []):
            lines.append(_attempt_line(a))
        if d is not None and d.snapshot_step is not None:
            lines.append(f"    live:      {_live(d)}")
        if node.source == "supervised":
            lines.append("    base recipe (the supervised run's start)")
        elif node.source != "fixed":
            lines += [
                f"    diagnosis: {parsed.get('diagnosis', '-')}",
                f"    updates:   {_updates(parsed)}",
                f"    expected:  {parsed.get('expected_outcome', '-')}",
            ]
            evidence = (d.context or {}).get("evidence") if d is not None else None
            if isinstance(evidence, dict):
                lines.append(f"    evidence:  {evidence_text(evidence)}")
        else:
            lines.append("    fixed recipe (hold all)")
        metrics = store.metrics(node.id)
        if metrics:
            lines.append(f"    next eval: {_eval_text(*metrics[0])}")
            if len(metrics) > 1:
                lines.append(f"    last eval: {_eval_text(*metrics[-1])}")
        else:
            lines.append("    next eval: - (not trained yet)")
        for s in stoppers.get(node.id, []):
            lines.append(f"    stopper {s.source}: {s.verdict.upper()}{_cost(s)} at step "
                         f"{(s.context or {}).get('answered_at_step', (s.context or {}).get('step', '?'))}: {s.reason}")
    if orphans:
        lines.append("  requests that created no node (the parent was closed, the search stopped, or a supervised "
                     "run's answer held the recipe or was rejected)")
        lines += [f"    on node {d.node_id}: " + _attempt_line(d).strip() for d in orphans]
    if stale:
        lines.append("  answers dropped as stale (prefetched proposals, or a supervised run's late answers)")
        lines += [f"    on node {d.node_id}: " + _attempt_line(d).strip() for d in stale]
    return "\n".join(lines)


def evidence_text(e: dict) -> str:
    """One line of what a model-ranked decision rested on (the trace's ``evidence``)."""
    if e.get("chosen_by") == "heuristic prior":
        return f"{e.get('points', 0)} scored segments: {e.get('why', 'too few')}; the heuristic's choice"
    chosen = e.get("chosen") or {}
    runners = ", ".join(f"{fmt(r.get('predicted'))} ± {fmt(r.get('sd'))}" for r in e.get("runners_up") or [])
    return (f"GP over {e.get('points')} scored segments (length scale {e.get('length_scale')}, noise "
            f"{e.get('noise')}); chose UCB rank {chosen.get('ucb_rank')} of {e.get('candidates')} candidates "
            f"({chosen.get('source')}), predicted {fmt(chosen.get('predicted'))} ± {fmt(chosen.get('sd'))}"
            + (f"; runners-up {runners}" if runners else ""))


def manager_stats(store: TreeStore, search_id: int, source: str) -> dict:
    """Counts of one manager's requests by verdict and rejection kind, and their latency (for reports)."""
    ds = [d for d in store.decisions(search_id, kind=DecisionKind.MANAGER) if d.source == source]
    lat = sorted(d.latency_s for d in ds if d.latency_s is not None)
    kinds = Counter(d.rejection or "?" for d in ds if d.verdict == "rejected")
    stale_kinds = Counter("admitted" if "verifier had admitted" in (d.reason or "")
                          else "rejected" if "verifier had rejected" in (d.reason or "") else "other"
                          for d in ds if d.verdict == "stale")
    return {
        "requests": len(ds),
        "verdicts": dict(Counter(d.verdict.value for d in ds)),
        "rejections": dict(kinds),
        "stale": dict(stale_kinds),
        "applied": sum(d.applied for d in ds),
        "latency_s": {"median": statistics.median(lat), "mean": statistics.fmean(lat), "min": lat[0],
                      "max": lat[-1]} if lat else None,
        "prompt_tokens": sum(d.prompt_tokens or 0 for d in ds),
        "completion_tokens": sum(d.completion_tokens or 0 for d in ds),
    }
