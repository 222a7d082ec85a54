"""Typed search configuration and ``key=value`` overrides.

Overrides are words like ``budget.steps=400`` or ``seed=3``. Keys of
:class:`SearchConfig` (dotted for its sections) configure the search; any other
plain key is a task option (``preset=smoke``, ``data=stories.txt``) validated by the
task's own options model. Everything is checked before any training starts, with
messages that name the valid choices.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from searchmgr.errors import UserError
from searchmgr.managers import manager_names
from searchmgr.sanitize import shorten
from searchmgr.stoppers import stopper_names


class ConfigError(UserError, ValueError):
    """A bad override or an inconsistent configuration; the message says how to fix it."""


class _Model(BaseModel):
    """Strict where it matters: no infinities or NaN in float fields, no ``true``/``false`` for numbers."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        if isinstance(v, bool):
            ann = cls.model_fields[info.field_name].annotation
            if ann is not bool and bool not in get_args(ann):
                raise ValueError(f"expected a number, not {str(v).lower()}")
        return v


class BudgetConfig(_Model):
    steps: int | None = Field(None, ge=1, description="total training steps across all nodes (default: the task's)")
    nodes: int | None = Field(None, ge=1, description="stop after this many trained nodes")
    wall_time_s: float | None = Field(None, gt=0, description="stop starting new segments after this many seconds")


class UCTConfig(_Model):
    c: float = Field(0.5, ge=0, description="exploration constant C of UCT")
    k_max: int = Field(3, ge=1, le=16, description="most children per node (before widening)")
    widen: float = Field(1.0, ge=0, le=16, description="progressive widening: a node may hold max(k_max, "
                         "widen*sqrt(N)) children, and the search never stops with budget left while a node can "
                         "grow (0: off)")
    q: Literal["mean", "max"] = Field("max", description="a child's Q: the mean utility backed up through it, or "
                                      "the best one in its subtree")
    starts: int | None = Field(None, ge=0, le=1024, description="with start=anywhere, the root's first children "
                               "trained before UCT decides (default: as many as the budget has horizons)")
    hold_first: bool = Field(True, description="a node's first child continues its recipe unchanged (so every "
                             "constant-recipe chain the tree starts is a path of it); the manager proposes the others")
    finish: bool = Field(True, description="endgame: when the steps left pay for it (and not for a segment more), "
                         "hold the recipe of a schedule that leads the best complete one at its depth (or, while none "
                         "is complete, the best that can still finish) to the horizon")
    fixed: Literal["first", "start"] = Field(
        "start", description="the task's fixed recipe: first, its whole schedule before anything else (never "
        "pruned), or start: the first start point, grown and pruned like any other schedule (a small budget is "
        "not spent on it; the run compares with it as far as it was grown)")
    start: Literal["bounded", "anywhere"] = Field(
        "anywhere", description="anywhere: the root's children after the fixed path start from recipes spread over "
        "the whole surface (bounded transitions after that), and the root's virtual child is scored with the "
        "tree's mean; bounded: every child is a bounded step from its parent")


class ManagerConfig(_Model):
    name: str = Field("model", description="who proposes child recipes (model: ranked by a model of the run's "
                      "evidence; heuristic: fixed rules; random; openai; replay)")
    attempts: int = Field(3, ge=1, le=10, description="tries per parent before the fallback manager decides")
    fallback: str = Field("heuristic", description="manager used when proposals keep being rejected")
    # LLM backend (manager `openai` and stopper `llm`) ----------------------------------
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1 "
                                 "(default: the openai client's, api.openai.com)")
    model: str = Field("gpt-4o-mini", description="model name sent to the endpoint")
    temperature: float = Field(0.2, ge=0, le=2, description="sampling temperature of the LLM")
    kappa: float = Field(1.0, ge=0, le=10, description="model manager: exploration weight of its upper confidence "
                         "bound (mean + kappa * sd of the predicted score)")
    top_k: int = Field(5, ge=2, le=9, description="model_llm and model_random: how many of the model's best-ranked "
                       "candidate children the chooser picks among")
    own: bool = Field(False, description="model_llm: the answer may also propose its own bounded change (the "
                      "per-request schema's updates) instead of one of the candidates")
    max_tokens: int = Field(1024, ge=16, description="most tokens one answer may take")
    timeout_s: float = Field(60.0, gt=0, description="seconds before one request counts as timed out")
    max_retries: int = Field(2, ge=0, le=10, description="retries after a network error, timeout, 429 or 5xx")
    backoff_s: float = Field(1.0, ge=0, description="first retry delay; doubles on each retry (a Retry-After wins)")
    api_key_env: str = Field("OPENAI_API_KEY", description="NAME of the environment variable holding the API key "
                             "(the key itself is never stored)")
    output: Literal["auto", "json_schema", "json_object_schema", "json_object", "text"] = Field(
        "auto", description="structured output: auto tries json_schema, then json_object with the schema "
        "(llama.cpp), then json_object, then plain text")
    response_schema: Literal["request", "generic"] = Field(
        "request", description="JSON schema sent with each request: `request` says what is admissible for that "
        "parent (knob enum, each knob's op and value range); `generic` is the decision schema")
    replay: Path | None = Field(None, description="run directory whose decision traces the `replay` manager "
                                "(and stopper) answer from")

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        """Runs stored before the coordinator carry prefetch settings; executor.ahead replaced them."""
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k not in ("prefetch", "prefetch_parents")}
        return data

    @field_validator("name", "fallback")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in manager_names():
            raise ValueError(f"unknown manager {shorten(v)}; choose one of {manager_names()}")
        return v

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url {shorten(v)} is not an http(s) URL; give the endpoint like "
                             "http://127.0.0.1:8080/v1 or https://api.openai.com/v1")
        return v

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str) -> str:
        if not v or not all(c.isalnum() or c == "_" for c in v):
            raise ValueError(f"api_key_env must be the NAME of an environment variable (like OPENAI_API_KEY), "
                             f"not {v[:3]!r}...; never put the key itself in the config")
        return v

    @model_validator(mode="after")
    def _replay_source(self) -> "ManagerConfig":
        if self.name == "replay" and self.replay is None:
            raise ValueError("manager.name=replay needs manager.replay=<run directory of the search to replay>")
        return self


class StopperConfig(_Model):
    name: str = Field("rule", description="early stopper")
    min_fraction: float = Field(0.4, ge=0, le=1, description="no stop before this fraction of a segment")
    window: int = Field(3, ge=2, description="evaluations the rule stopper fits its trend on")
    margin: float = Field(0.01, ge=0, description="noise allowance, relative to the best score")
    noise: bool = Field(True, description="the rule stopper's allowance is at least sqrt(2) times the objective's "
                        "evaluation noise, estimated over the tree's trajectories (noisy metrics: fewer prunes on "
                        "noise; false: margin only)")
    scope: Literal["all", "final"] = Field("all", description="which segments the stopper may prune: all, or only "
                                           "those ending at the horizon (compared with the best complete schedule; "
                                           "no short-horizon bias against slow starters)")
    reference: Literal["best", "median", "horizon", "rank"] = Field(
        "best", description="what a segment is judged against: the best finished segment at its depth, the median "
        "of the segments tried there (pruned ones where they stopped), horizon: the best complete schedule, with "
        "the segment's trend projected to the end of the schedule, or rank: its peers at its depth after as many "
        "evaluations (stopped only when behind most of them and its curve cannot reach their quantile at the end)")
    quantile: float = Field(0.5, gt=0, lt=1, description="stopper.reference=rank: a segment behind more than this "
                            "share of its peers, whose projection misses this quantile of their final scores, stops")
    every_evals: int = Field(2, ge=1, description="the llm stopper asks at most every N evaluations of a segment")
    every_s: float = Field(0.0, ge=0, description="... and at most once per S seconds")
    asynchronous: bool = Field(True, description="the llm stopper asks in the background and applies the answer "
                               "at the next evaluation (training never waits for it)")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in stopper_names():
            raise ValueError(f"unknown stopper {shorten(v)}; choose one of {stopper_names()}")
        return v


class ExecutorConfig(_Model):
    name: str = Field("inline", description="where segments train: inline (this process), process (local "
                      "worker processes) or ray")
    workers: int = Field(1, ge=1, le=1024, description="segments trained at once (process and ray)")
    gpus_per_worker: float = Field(0, ge=0, le=16, description="GPUs per worker (process: whole GPUs via "
                                   "CUDA_VISIBLE_DEVICES; ray: the task's num_gpus)")
    address: str | None = Field(None, description="address of an existing Ray cluster (default: start a local one)")
    ahead: int | None = Field(None, ge=0, le=64, description="proposals asked ahead of need while segments train "
                              "(default: 1 per worker for slow managers such as LLMs, else 0)")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        from searchmgr.executors import executor_names

        if v not in executor_names():
            raise ValueError(f"unknown executor {v!r}; choose one of {executor_names()}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "ExecutorConfig":
        if self.name == "inline" and self.workers != 1:
            raise ValueError(f"executor.workers={self.workers} needs executor.name=process or ray; "
                             "the inline executor trains one segment at a time")
        if self.name == "process" and self.gpus_per_worker != int(self.gpus_per_worker):
            raise ValueError("executor.gpus_per_worker must be a whole number with executor.name=process "
                             "(fractional GPUs need executor.name=ray)")
        if self.address is not None and self.name != "ray":
            raise ValueError("executor.address names a Ray cluster; add executor.name=ray")
        return self


class PolicyConfig(_Model):
    name: Literal["uct", "grid", "random", "tpe", "hyperband", "asha", "pbt", "pb2"] = Field(
        "uct", description="uct: the tree search; baselines over the same store: grid, random, tpe (Optuna, median "
        "pruner), hyperband (Optuna TPE with its HyperbandPruner), asha (asynchronous successive halving) as "
        "constant-recipe chains; pbt, pb2 (PBT with a GP-bandit explore step) as populations")
    grid: dict[str, list[float]] = Field(default_factory=dict, description="grid values per knob (grid policy; "
                                         "unlisted knobs: evenly spaced on their scale)")
    base_first: bool = Field(True, description="grid, random, tpe, hyperband, asha: the first trial is the task's "
                             "base recipe, as practitioners enqueue their default (false: every trial is the "
                             "method's own)")
    reduction_factor: int | None = Field(None, le=64, description="asha, hyperband: a rung keeps the top "
                                         "1/reduction_factor (default: 4 for asha, Ray Tune's; 3 for hyperband, "
                                         "Optuna's)")
    grace: int | None = Field(None, le=64, description="asha: segments before the first rung (default 1, Ray Tune's "
                              "grace period)")
    population: int | None = Field(None, ge=2, le=1024, description="PBT and PB2 population (default: budget / "
                                   "horizon)")
    quantile: float = Field(0.25, gt=0, le=0.5, description="PBT, PB2: the bottom quantile copies the top quantile")

    @field_validator("reduction_factor")
    @classmethod
    def _halving(cls, v: int | None) -> int | None:
        if v is not None and v < 2:
            raise ValueError(f"reduction_factor={v}: successive halving keeps the top 1/reduction_factor of each "
                             "rung, so it must be 2 or more (Ray Tune's ASHA uses 4, Optuna's Hyperband 3)")
        return v

    @field_validator("grace")
    @classmethod
    def _grace(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError(f"grace={v}: the first rung comes after 1 or more segments")
        return v


class CheckpointsConfig(_Model):
    keep: Literal["expandable", "all"] = Field(
        "expandable", description="expandable: keep the checkpoints that can still be a parent, plus the best "
        "and fixed paths' tips, and delete the rest; all: keep every checkpoint")


class SelectConfig(_Model):
    reevaluate: int | None = Field(None, ge=0, le=64, description="before naming the best schedule, re-evaluate "
                                   "the checkpoints of this many best complete schedules on fresh validation data "
                                   "(the task's evaluate_checkpoint) and name the best by the mean; 0: off (default: "
                                   "3 for RL and GRPO tasks that can re-evaluate, else 0)")
    repeats: int = Field(3, ge=1, le=64, description="fresh evaluations per re-evaluated schedule (the same seeds "
                         "for every schedule)")


class SearchConfig(_Model):
    task: str = Field(description="task name (see `searchmgr tasks`)")
    seed: int = Field(0, ge=0, le=2 ** 32 - 1, description="seed of the root model and of random managers")
    out: Path | None = Field(None, description="run directory (default runs/<task>-<time>); a new or empty one")
    segment_steps: int | None = Field(None, ge=1, description="training steps per node (default: the task's)")
    max_depth: int | None = Field(None, ge=1, le=64, description="segments per schedule (default: the task's)")
    eval_every: int | None = Field(None, ge=1, description="steps between evaluations (default: the task's)")
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    uct: UCTConfig = Field(default_factory=UCTConfig)
    manager: ManagerConfig = Field(default_factory=ManagerConfig)
    stopper: StopperConfig = Field(default_factory=StopperConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    checkpoints: CheckpointsConfig = Field(default_factory=CheckpointsConfig)
    select: SelectConfig = Field(default_factory=SelectConfig)
    threads: int | None = Field(None, ge=1, le=1024, description="torch threads per worker (default: torch's own "
                                "choice, which oversubscribes a machine shared by several runs)")
    task_options: dict[str, Any] = Field(default_factory=dict, description="validated by the task's options model")

    @field_validator("out", mode="before")
    @classmethod
    def _out_named(cls, v: Any) -> Any:
        if isinstance(v, str) and not v.strip():
            raise ValueError("out= is empty; give a new directory such as out=runs/toy3, or leave out= away for "
                             "runs/<task>-<time>")
        return v

    @property
    def horizon(self) -> int:
        assert self.segment_steps is not None and self.max_depth is not None
        return self.segment_steps * self.max_depth

    def check_resolved(self) -> None:
        """Cross-field checks once task defaults are filled in."""
        if self.eval_every > self.segment_steps:
            raise ConfigError(f"eval_every={self.eval_every} exceeds segment_steps={self.segment_steps}; "
                              "lower eval_every so each segment is evaluated at least once mid-way")
        if self.budget.steps < self.horizon:
            raise ConfigError(
                f"budget.steps={self.budget.steps} cannot pay for the fixed baseline, which needs "
                f"max_depth x segment_steps = {self.horizon} steps; raise budget.steps or lower max_depth")
        if self.policy.name == "asha" and (self.policy.grace or 1) >= self.max_depth:
            raise ConfigError(f"policy.grace={self.policy.grace or 1} puts asha's first rung at or past the horizon "
                              f"(max_depth={self.max_depth} segments), so no chain would ever be compared; lower "
                              "policy.grace or raise max_depth")
        if self.policy.name in ("pbt", "pb2") and (self.policy.population or self.budget.steps // self.horizon) < 2:
            raise ConfigError(f"{self.policy.name} needs a population of 2 or more: budget.steps="
                              f"{self.budget.steps} pays for {self.budget.steps // self.horizon} horizon(s) of "
                              f"{self.horizon} steps; raise "
                              "budget.steps or set policy.population")


SECTIONS = {"budget": BudgetConfig, "uct": UCTConfig, "manager": ManagerConfig, "stopper": StopperConfig,
            "policy": PolicyConfig, "executor": ExecutorConfig, "checkpoints": CheckpointsConfig, "select": SelectConfig}
# keys fixed at creation: resume refuses to change them
FROZEN_KEYS = ("task", "seed", "segment_steps", "max_depth", "eval_every", "task_options")


def parse_value(text: str) -> Any:
    """``3`` -> int, ``0.1`` -> float, ``true``/``false``/``none`` -> bool/None, else the string."""
    low = text.strip().lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return text


def _typed(model: type[BaseModel], field: str, text: str) -> Any:
    """Plain strings stay strings for ``str`` fields (``stopper.name=none`` names the ``none`` stopper)."""
    if model.model_fields[field].annotation is not str:
        return parse_value(text)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":  # a quoted string: drop the quotes
        return text[1:-1]
    return text


def override_keys() -> list[str]:
    """Every search key an override may set, for help texts."""
    keys = [k for k in SearchConfig.model_fields if k not in SECTIONS and k != "task_options"]
    return keys + [f"{s}.{f}" for s, m in SECTIONS.items() for f in m.model_fields]


def parse_overrides(words: Sequence[str]) -> dict[str, Any]:
    """``["budget.steps=400", "seed=3"]`` -> ``{"budget": {"steps": 400}, "seed": 3}``."""
    out: dict[str, Any] = {}
    for word in words:
        key, eq, value = word.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ConfigError(f"override {shorten(word)} is not key=value (for example budget.steps=400)")
        parts = key.split(".")
        if len(parts) > 2:
            raise ConfigError(f"override key {shorten(key)} is nested too deep; use section.field")
        if len(parts) == 2:
            section, field = parts
            if section not in SECTIONS:
                raise ConfigError(f"unknown section {shorten(section)} in {shorten(key)}; sections are {sorted(SECTIONS)}")
            if field not in SECTIONS[section].model_fields:
                raise ConfigError(f"unknown key {shorten(key)}; {section} has {sorted(SECTIONS[section].model_fields)}")
            out.setdefault(section, {})[field] = _typed(SECTIONS[section], field, value)
        elif key in SECTIONS or key == "task_options":
            raise ConfigError(f"{shorten(key)} is a section; set one of its fields, like {key}.<field>=value")
        elif key in SearchConfig.model_fields:
            out[key] = _typed(SearchConfig, key, value)
        else:
            out.setdefault("task_options", {})[key] = parse_value(value)
    return out


def merge(base: Mapping[str, Any], updates: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in updates.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def build_config(data: Mapping[str, Any]) -> SearchConfig:
    try:
        return SearchConfig.model_validate(dict(data))
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{loc}: {msg}" if loc else msg)
        raise ConfigError("bad configuration: " + "; ".join(problems)) from None
