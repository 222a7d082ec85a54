"""Discovered schedules: export the best root-to-leaf path of a run, load it, look up recipes by step."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from searchmgr import tree as T
from searchmgr.errors import UserError
from searchmgr.rundir import open_run
from searchmgr.run import Run
from searchmgr.store import TreeStore

FORMAT = "searchmgr.schedule/1"


class ScheduleError(UserError, ValueError):
    """A schedule file or run that cannot be exported, read or replayed; the message says why."""


@dataclass(frozen=True)
class ScheduleSegment:
    start_step: int
    end_step: int
    recipe: dict[str, float]
    node_id: int | None = None
    source: str | None = None
    val_score: float | None = None
    test_score: float | None = None
    decision: dict[str, Any] | None = None


@dataclass(frozen=True)
class Schedule:
    """A piecewise-constant recipe over training steps (each segment a recipe held for its steps)."""

    task: str
    segments: tuple[ScheduleSegment, ...]
    objective: dict[str, str] = field(default_factory=dict)
    val_score: float | None = None
    test_score: float | None = None
    fixed: dict[str, float | None] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def horizon(self) -> int:
        return self.segments[-1].end_step if self.segments else 0

    def recipe_at(self, step: int) -> dict[str, float]:
        """The recipe in force at ``step`` (the last segment's after the horizon)."""
        if not self.segments:
            raise ScheduleError("the schedule has no segments")
        if step < 0:
            raise ScheduleError(f"step {step} is negative")
        for s in self.segments:
            if s.start_step <= step < s.end_step:
                return dict(s.recipe)
        return dict(self.segments[-1].recipe)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "task": self.task, "objective": self.objective, "val_score": self.val_score,
                "test_score": self.test_score, "fixed": self.fixed, "horizon": self.horizon,
                "segments": [asdict(s) for s in self.segments], "provenance": self.provenance}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.is_dir():
            raise ScheduleError(f"{path} is a directory; give a file name such as {path / 'schedule.json'}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Schedule":
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ScheduleError(f"no schedule file at {path}; make one with `searchmgr export RUN -o {path}`") from None
        except json.JSONDecodeError as e:
            raise ScheduleError(f"{path} is not JSON ({e})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ScheduleError(f"{path} is not a searchmgr schedule (expected format {FORMAT!r})")
        segs = tuple(ScheduleSegment(**s) for s in data["segments"])
        for a, b in zip(segs, segs[1:]):
            if a.end_step != b.start_step:
                raise ScheduleError(f"{path}: segments are not contiguous at step {a.end_step}")
        return cls(data["task"], segs, data.get("objective", {}), data.get("val_score"), data.get("test_score"),
                   data.get("fixed", {}), data.get("provenance", {}))


def export_schedule(run_dir: str | Path) -> Schedule:
    """The best root-to-leaf schedule of the run at ``run_dir`` (by validation score)."""
    run_dir = Path(run_dir)
    with open_run(run_dir) as store:
        return schedule_of(store, run_dir)


def schedule_of(store: TreeStore, run_dir: Path) -> Schedule:
    """The best root-to-leaf schedule in ``store`` (read-only stores too), with the run's checkpoint damage."""
    from searchmgr.repair import damage_lines

    run = Run.of(store, run_dir)
    config = run.config.model_dump(mode="json")
    damage = damage_lines(store, run_dir, run.search_id)
    objective, nodes, best = run.objective, run.nodes, run.best
    horizon = config["max_depth"] * config["segment_steps"]
    if best is None and any(n.status.finished for n in nodes if n.depth):
        raise ScheduleError(f"every segment {run_dir} trained failed (`searchmgr show {run_dir}` lists the errors): "
                            "there is no schedule to export")
    if best is None or best.end_step < horizon:
        reached = f"its best schedule ends at step {best.end_step} of {horizon}" if best else "nothing is trained"
        raise ScheduleError(f"{run_dir} has no complete schedule yet ({reached}): a partial schedule cannot be "
                            f"replayed as a result; continue the run (`searchmgr explore --resume {run_dir}`, with a "
                            "larger budget.steps if it finished)")
    segments = []
    for n in T.path_to(nodes, best.id)[1:]:
        d = store.decision(n.decision_id).parsed if n.decision_id else None
        segments.append(ScheduleSegment(n.start_step, n.end_step, n.recipe, n.id, n.source, n.val_score,
                                        n.test_score, d))
    fixed = run.fixed
    return Schedule(
        task=run.task, segments=tuple(segments),
        objective={"metric": objective.metric, "direction": objective.direction.value,
                   "test_metric": objective.test_metric},
        val_score=best.val_score, test_score=best.test_score,
        fixed={"val_score": fixed.val_score, "test_score": fixed.test_score, "depth": fixed.depth},
        provenance={"run": str(run_dir.resolve()), "search_id": run.search_id, "leaf_node": best.id,
                    "seed": config["seed"], "task_options": config["task_options"],
                    "segment_steps": config["segment_steps"], "max_depth": config["max_depth"],
                    "eval_every": config["eval_every"], "info": run.info, "damage": damage,
                    "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
