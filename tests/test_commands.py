"""A person's commands, queued in the store and applied by the search loop."""

import pytest

from searchmgr import tree as T
from searchmgr.commands import HUMAN, ChildRequest, CommandError, apply_commands, is_paused, verify_child
from searchmgr.coordinator import Coordinator
from searchmgr.decision import RejectionKind
from searchmgr.search import create_run, explore, resume_run
from searchmgr.config import build_config
from searchmgr.store import CommandKind, CommandStatus, DecisionKind, TreeStore


def small_run(tmp_path, *words):
    out = tmp_path / "run"
    explore(["task=toy", "preset=smoke", f"out={out}", "budget.steps=80", *words])  # the fixed path + 1 node
    return out


def test_verify_child_keeps_missing_knobs_and_names_every_bad_knob(tmp_path, toy_surface):
    run = small_run(tmp_path)
    with TreeStore(run / "tree.db") as s:
        nodes = s.nodes(s.search()["id"])
    parent = T.fixed_path(nodes)[1]
    ok, reasons = verify_child(toy_surface, parent, [], {"dropout": 0.1}, "more dropout", max_depth=3)
    assert ok.ok and not reasons
    assert ok.recipe == {**parent.recipe, "dropout": 0.1}
    assert ok.decision.diagnosis == "more dropout" and [u.knob for u in ok.decision.updates] == ["dropout"]
    bad, reasons = verify_child(toy_surface, parent, [], {"lr": 0.5, "dropout": 0.45, "nope": 1.0}, max_depth=3)
    assert not bad.ok
    assert any("lr" in r and "out_of_bounds" in r for r in reasons)  # 0.5 > 0.03
    assert any("dropout" in r and "step_too_large" in r for r in reasons)  # 0 -> 0.45 > 0.2 * 0.5
    assert any("unknown_knob" in r and "nope" in r for r in reasons)
    text, reasons = verify_child(toy_surface, parent, [], {"lr": "fast"}, max_depth=3)
    assert text.rejection.kind is RejectionKind.MALFORMED_JSON and "lr" in reasons[0]
    dup, _ = verify_child(toy_surface, parent, [parent.recipe], {}, max_depth=3)
    assert dup.rejection.kind is RejectionKind.DUPLICATE_SIBLING
    with pytest.raises(CommandError, match="horizon"):
        verify_child(toy_surface, T.fixed_path(nodes)[3], [], {"dropout": 0.1}, max_depth=3)


def test_queued_child_is_trained_next_with_a_human_decision(tmp_path):
    run = small_run(tmp_path, "uct.k_max=1")  # a person's child may go beyond k_max
    with TreeStore(run / "tree.db") as s:
        sid = s.search()["id"]
        fixed = T.fixed_path(s.nodes(sid))
        k = len(T.children(s.nodes(sid), fixed[1].id))
        good = s.queue_command(sid, CommandKind.CHILD, fixed[1].id, {"recipe": {"weight_decay": 0.1}, "note": "wd"})
        bad = s.queue_command(sid, CommandKind.CHILD, fixed[1].id, {"recipe": {"lr": 1.0}})
    explore(["budget.steps=100", "budget.nodes=5"], resume=run)  # room for exactly one more segment
    with TreeStore(run / "tree.db") as s:
        nodes = s.nodes(sid)
        cmds = {c.id: c for c in s.commands(sid)}
        human = [n for n in nodes if n.source == HUMAN]
        assert len(human) == 1 and human[0].parent_id == fixed[1].id
        assert human[0].status.finished and human[0].steps_trained > 0  # like any node, the stopper may prune it
        assert human[0].recipe["weight_decay"] == 0.1
        assert cmds[good].status is CommandStatus.APPLIED and cmds[good].child_id == human[0].id
        assert cmds[bad].status is CommandStatus.REJECTED and "out_of_bounds" in cmds[bad].result
        d = s.decision(human[0].decision_id)
        assert d.source == HUMAN and d.verdict == "accepted" and d.applied and d.context["note"] == "wd"
        rejected = [d for d in s.decisions(sid, fixed[1].id, DecisionKind.MANAGER) if d.verdict == "rejected"]
        assert rejected and rejected[-1].source == HUMAN
        assert k >= 1 and len(T.children(nodes, fixed[1].id)) == k + 1


def test_a_persons_child_is_verified_and_created_where_the_coordinator_creates_every_node(tmp_path, monkeypatch):
    run = small_run(tmp_path)
    made = []
    add_child = Coordinator._add_child
    monkeypatch.setattr(Coordinator, "_add_child", lambda self, *a: made.append(a) or add_child(self, *a))
    search = resume_run(run)
    try:
        s, sid = search.store, search.search_id
        fixed = T.fixed_path(s.nodes(sid))
        good = s.queue_command(sid, CommandKind.CHILD, fixed[1].id, {"recipe": {"dropout": 0.1}, "note": "drop"})
        bad = s.queue_command(sid, CommandKind.CHILD, fixed[1].id, {"recipe": {"lr": 1.0}})
        late = s.queue_command(sid, CommandKind.CHILD, fixed[3].id, {"recipe": {"dropout": 0.1}})
        effects = apply_commands(s, sid, grow=search.person_child)
        assert len(made) == 1 and len(effects.children) == 1  # the one node made, made by the coordinator
        parent, recipe, trace = made[0]
        assert parent.id == fixed[1].id and recipe == {**fixed[1].recipe, "dropout": 0.1}  # verified: whole
        assert trace.source == HUMAN and trace.verdict == "accepted" and trace.context["command_id"] == good
        child = s.node(effects.children[0])
        d = s.decision(child.decision_id)
        assert child.source == HUMAN and child.status.value == "pending" and d.applied and d.child_id == child.id
        cmds = {c.id: c for c in s.commands(sid)}
        assert cmds[bad].status is CommandStatus.REJECTED and "out_of_bounds" in cmds[bad].result
        assert cmds[late].status is CommandStatus.REJECTED and "horizon" in cmds[late].result
        rejected = [d for d in s.decisions(sid, kind=DecisionKind.MANAGER) if d.source == HUMAN and not d.applied]
        assert [d.context["command_id"] for d in rejected] == [bad, late] and all(d.reason for d in rejected)
        # verified against the tree as it is now: the same child again is a duplicate of its new sibling
        again = search.person_child(ChildRequest(0, fixed[1].id, {"dropout": 0.1}))
        assert isinstance(again, str) and "duplicate_sibling" in again and len(made) == 1
    finally:
        search.close()


def test_pause_waits_until_resume_and_stop_ends_the_search(tmp_path):
    config = build_config({"task": "toy", "task_options": {"preset": "smoke"}, "out": str(tmp_path / "run"),
                           "budget": {"steps": 240}})
    search = create_run(config)
    try:
        s, sid = search.store, search.search_id
        s.queue_command(sid, CommandKind.PAUSE)
        held = apply_commands(s, sid, grow=search.person_child, wait=False,
                              sleep=lambda _: pytest.fail("segments in training: never wait"))
        assert held.paused and held.stop is None  # the loop starts nothing new and collects its results
        polls = []

        def sleep(_):  # a person resumes after three polls
            polls.append(1)
            if len(polls) == 3:
                s.queue_command(sid, CommandKind.RESUME)

        effects = apply_commands(s, sid, grow=search.person_child, sleep=sleep)
        assert len(polls) == 3 and effects.stop is None and not is_paused(s, sid)
        assert [e["kind"] for e in s.events(sid)][-2:] == ["paused", "unpaused"]
        root = T.root(s.nodes(sid))
        s.queue_command(sid, CommandKind.CLOSE, root.id)
        s.queue_command(sid, CommandKind.STOP)
        outcome = search.run()
        assert outcome.stop_reason.startswith("stopped by command") and outcome.nodes_trained == 0
        effects = apply_commands(s, sid, grow=search.person_child)
        assert effects.stop is None  # an applied stop does not stop again
        assert {n.id for n in s.nodes(sid)} <= s.closed(sid)  # the whole tree is under the closed root
    finally:
        search.close()


def test_closed_subtree_is_never_expanded(tmp_path):
    run = small_run(tmp_path)
    with TreeStore(run / "tree.db") as s:
        sid = s.search()["id"]
        closed = T.fixed_path(s.nodes(sid))[1]
        s.queue_command(sid, CommandKind.CLOSE, closed.id)
        before = {n.id for n in s.nodes(sid)}
    explore(["budget.steps=160"], resume=run)
    with TreeStore(run / "tree.db") as s:
        nodes = s.nodes(sid)
        new = [n for n in nodes if n.id not in before]
        assert new  # the search went on elsewhere
        inside = {n.id for n in nodes if closed.id in {p.id for p in T.path_to(nodes, n.id)}}
        assert not inside & {n.id for n in new}
