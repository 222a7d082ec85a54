"""Readable decision traces: per node, the diagnosis, the updates, the expected outcome and what happened."""

from __future__ import annotations

from searchmgr.store import DecisionKind, TreeStore


def _updates(parsed: dict | None) -> str:
    ups = (parsed or {}).get("updates") or []
    if not ups:
        return "hold all"
    return ", ".join(f"{u['knob']} {'x' if u['op'] == 'scale' else '+'}{u['value']:.3g}" if u["op"] != "hold"
                     else f"{u['knob']} hold" for u in ups)


def render_decisions(store: TreeStore, search_id: int) -> str:
    """Per node: the manager decision that created it, rejected attempts before it, stopper verdicts on it."""
    nodes = {n.id: n for n in store.nodes(search_id)}
    decisions = store.decisions(search_id)
    lines = ["", "decisions"]
    for d in decisions:
        if d.kind is DecisionKind.MANAGER and d.verdict != "accepted":
            lines.append(f"  on node {d.node_id}: {d.source} attempt {d.attempt + 1} {d.verdict}: {d.reason}"
                         + (f" [{d.latency_s:.2f}s]" if d.latency_s else ""))
            continue
        if d.kind is DecisionKind.STOPPER:
            lines.append(f"  node {d.node_id} stopper {d.source}: {d.verdict.upper()} — {d.reason}")
            continue
        child = nodes.get(d.child_id) if d.child_id else None
        if child is None:
            lines.append(f"  on node {d.node_id}: {d.source} accepted but not applied (stale or interrupted)")
            continue
        parsed = d.parsed or {}
        metrics = store.metrics(child.id)
        first = metrics[0] if metrics else None
        observed = (f"first eval at step {first[0]}: " + ", ".join(
            f"{k}={v:.4g}" for k, v in first[1].items() if k.startswith(("val/", "train/loss")))) if first else "-"
        lines += [
            f"  node {child.id} (from {d.node_id}, depth {child.depth}, {d.source}"
            + (f", {d.latency_s:.2f}s" if d.latency_s else "") + f") -> {child.status.value}, "
            f"val {child.val_score if child.val_score is None else f'{child.val_score:.4g}'}",
            f"    diagnosis: {parsed.get('diagnosis', '-')}",
            f"    updates:   {_updates(parsed)}",
            f"    expected:  {parsed.get('expected_outcome', '-')}",
            f"    observed:  {observed}",
        ]
    return "\n".join(lines)
