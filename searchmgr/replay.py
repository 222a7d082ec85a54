"""Replay an exported schedule from scratch: a reproducibility check of a search's result.

The schedule's provenance names the task, its options, the seed, the segment
length, the depth and the evaluation interval. :func:`replay` builds the task,
calls ``init(seed)`` and then ``train_segment`` once per segment of the schedule
with the same :class:`~searchmgr.tasks.Segment` the search used (same horizon, so
step-dependent schedules such as a cosine learning rate line up). Between
segments the checkpoint goes through ``torch.save``/``torch.load`` exactly as the
search's checkpoint files do. With the same seed and thread count on CPU a task
that carries its RNG state in its checkpoints reproduces the search's scores
exactly; anything else (another seed, ``eval_every``, device or thread count) is
reported as a difference, not hidden; so is a task whose provenance (``task.info()``:
model size, data source ...) no longer matches the one the search recorded, as
happens when a preset's definition changed since the search.

Overrides (``key=value``): ``seed``, ``eval_every``, and any option of the task
(``preset``, ``data`` ...), which replace the provenance's values.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from searchmgr.config import ConfigError, parse_value
from searchmgr.sanitize import fmt
from searchmgr.schedule import Schedule, ScheduleError
from searchmgr.store import roundtrip
from searchmgr.tasks import Segment, TaskError, make_task

REPLAY_KEYS = ("seed", "eval_every")


@dataclass(frozen=True)
class SegmentReplay:
    start_step: int
    end_step: int
    recipe: dict[str, float]
    search_val: float | None
    replay_val: float | None
    search_test: float | None
    replay_test: float | None
    seconds: float

    @property
    def val_diff(self) -> float | None:
        return _diff(self.replay_val, self.search_val)


@dataclass(frozen=True)
class ReplayResult:
    """Scores the replay reached beside the scores the search recorded."""

    task: str
    metric: str
    test_metric: str
    seed: int
    settings: dict[str, Any]
    segments: tuple[SegmentReplay, ...]
    val: float | None
    test: float | None
    search_val: float | None
    search_test: float | None
    seconds: float
    torch_threads: int
    info_changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # key -> (at search, now)
    curve: tuple[tuple[int, dict[str, float]], ...] = field(default=(), repr=False)

    @property
    def val_diff(self) -> float | None:
        return _diff(self.val, self.search_val)

    @property
    def test_diff(self) -> float | None:
        return _diff(self.test, self.search_test)

    @property
    def exact(self) -> bool:
        """Every segment's validation score and the final test score equal the search's bit for bit."""
        return all(s.replay_val == s.search_val for s in self.segments) and self.test == self.search_test

    def to_dict(self) -> dict:
        return {"task": self.task, "metric": self.metric, "seed": self.seed, "settings": self.settings,
                "val": self.val, "search_val": self.search_val, "val_diff": self.val_diff,
                "test": self.test, "search_test": self.search_test, "test_diff": self.test_diff,
                "exact": self.exact, "info_changes": {k: list(v) for k, v in self.info_changes.items()},
                "seconds": self.seconds, "torch_threads": self.torch_threads,
                "segments": [{"start_step": s.start_step, "end_step": s.end_step, "recipe": s.recipe,
                              "search_val": s.search_val, "replay_val": s.replay_val, "val_diff": s.val_diff,
                              "search_test": s.search_test, "replay_test": s.replay_test, "seconds": s.seconds}
                             for s in self.segments]}

    def render(self) -> str:
        lines = [f"replayed {self.task} (seed {self.seed}, {len(self.segments)} segments, {self.seconds:.1f}s, "
                 f"{self.torch_threads} torch threads)",
                 f"  {'steps':>13}  {'search ' + self.metric:>18}  {'replay':>12}  {'difference':>11}  recipe"]
        for s in self.segments:
            lines.append(f"  {s.start_step:>6}-{s.end_step:<6}  {fmt(s.search_val, 6):>18}  "
                         f"{fmt(s.replay_val, 6):>12}  "
                         f"{fmt(s.val_diff, 6):>11}  " + " ".join(f"{k}={v:.3g}" for k, v in s.recipe.items()))
        lines.append(f"final {self.metric}: search {fmt(self.search_val, 6)}, replay {fmt(self.val, 6)}, "
                     f"difference {fmt(self.val_diff, 6)}{_rel(self.val_diff, self.search_val)}")
        lines.append(f"final {self.test_metric}: search {fmt(self.search_test, 6)}, replay {fmt(self.test, 6)}, "
                     f"difference {fmt(self.test_diff, 6)}{_rel(self.test_diff, self.search_test)}")
        lines.append("exact match (bit for bit)" if self.exact else "not bit-exact (see the differences above)")
        for k, (then, now) in self.info_changes.items():
            lines.append(f"warning: the task is not built as in the search: {k} was {then}, is {now}")
        return "\n".join(lines)


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _rel(d: float | None, ref: float | None) -> str:
    return "" if d is None or not ref else f" ({100 * d / abs(ref):+.3g}%)"


def parse_replay_overrides(words: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``["seed=3", "preset=smoke"]`` -> (replay settings, task options)."""
    settings: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for word in words:
        key, eq, value = word.partition("=")
        key = key.strip()
        if not eq or not key or "." in key:
            raise ConfigError(f"override {word!r} is not key=value with a plain key; use {list(REPLAY_KEYS)} "
                              "or a task option such as preset=smoke")
        (settings if key in REPLAY_KEYS else options)[key] = parse_value(value)
    for key in REPLAY_KEYS:
        if key in settings and (not isinstance(settings[key], int) or isinstance(settings[key], bool)
                                or settings[key] < (0 if key == "seed" else 1)):
            raise ConfigError(f"{key} must be an integer >= {0 if key == 'seed' else 1}, not {settings[key]!r}")
    return settings, options


def replay(schedule: Schedule | str | Path, overrides: Sequence[str] = (),
           on_eval: Callable[[int, dict[str, float]], None] | None = None) -> ReplayResult:
    """Train from scratch following ``schedule`` and compare with the scores the search recorded."""
    if not isinstance(schedule, Schedule):
        schedule = Schedule.load(schedule)
    prov = schedule.provenance
    missing = [k for k in ("seed", "segment_steps", "max_depth", "eval_every") if k not in prov]
    if missing:
        raise ScheduleError(f"the schedule's provenance lacks {missing}; export it again with `searchmgr export`")
    settings, options = parse_replay_overrides(overrides)
    seed = settings.get("seed", prov["seed"])
    eval_every = settings.get("eval_every", prov["eval_every"])
    horizon = prov["segment_steps"] * prov["max_depth"]
    task_options = {**prov.get("task_options", {}), **options}
    try:
        task = make_task(schedule.task, task_options)
    except TaskError as e:
        raise ConfigError(str(e)) from None
    metric, test_metric = task.objective.metric, task.objective.test_metric
    then, now = prov.get("info") or {}, task.info()
    info_changes = {k: (then[k], now[k]) for k in then if k in now and then[k] != now[k]}
    started = time.perf_counter()
    state = roundtrip(task.init(seed))
    curve: list[tuple[int, dict[str, float]]] = []

    def record(step: int, metrics: dict[str, float]) -> bool:
        curve.append((step, dict(metrics)))
        if on_eval is not None:
            on_eval(step, metrics)
        return False

    out = []
    for seg in schedule.segments:
        t0 = time.perf_counter()
        segment = Segment(seg.start_step, seg.end_step - seg.start_step, horizon, eval_every)
        result = task.train_segment(state, task.surface.check(seg.recipe), segment, record)
        if result.checkpoint is None:
            raise RuntimeError(f"task {task.name} returned no checkpoint for segment {seg.start_step}-{seg.end_step}")
        state = roundtrip(result.checkpoint)
        val = result.metrics.get(metric)
        out.append(SegmentReplay(seg.start_step, seg.end_step, dict(seg.recipe), seg.val_score, val, seg.test_score,
                                 result.metrics.get(test_metric), time.perf_counter() - t0))
    last = out[-1] if out else None
    val = last.replay_val if last else None
    if val is not None and not math.isfinite(val):
        val = None
    return ReplayResult(
        task=schedule.task, metric=metric, test_metric=test_metric, seed=seed,
        settings={"eval_every": eval_every, "horizon": horizon, "task_options": task.options.model_dump(mode="json")},
        segments=tuple(out), val=val, test=last.replay_test if last else None, search_val=schedule.val_score,
        search_test=schedule.test_score, seconds=time.perf_counter() - started, torch_threads=torch.get_num_threads(),
        info_changes=info_changes, curve=tuple(curve))
