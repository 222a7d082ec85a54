"""Task resolution: a ``task=`` reference -> a validated :class:`Task`.

A reference is one of

* a name registered under the entry-point group ``searchmgr.tasks`` (the built-in
  tasks register there in searchmgr's ``pyproject.toml``; any installed package can
  add its own);
* ``package.module:attr``, an importable module;
* ``path/to/file.py:attr``, a file (its folder goes on ``sys.path`` so it can import
  its neighbours).

``attr`` may be a Task subclass (built with the task options), a Task instance or a
zero-argument factory returning one. :func:`load_task` imports it, builds it and
checks everything that can be checked before training (names, objective, surface,
base recipe, search defaults); the returned task is wrapped by
:class:`~searchmgr.tasks.contract.CheckedTask`, which checks what only training
shows. Its ``info()`` records where it came from (reference, module, file and the
file's sha256) and its objective, so ``show``, ``export`` and reports read them from
the run without importing the plug-in. Heavy dependencies load only when a task is
used. The public contract is ``docs/tasks.md``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Mapping

from pydantic import ValidationError

from searchmgr.sanitize import shorten
from searchmgr.tasks.base import (
    Direction,
    Family,
    Objective,
    OnEval,
    Segment,
    SegmentResult,
    SearchDefaults,
    Task,
    TaskOptions,
    TieBreak,
    is_namespaced,
)
from searchmgr.tasks.contract import CheckedTask
from searchmgr.tasks.source import SourceKind, TaskError, TaskSource

ENTRY_POINT_GROUP = "searchmgr.tasks"
PLUGIN_MODULE_PREFIX = "searchmgr_plugin_"  # modules imported from a file path are named after it


class UnknownTask(TaskError):
    """A plain name that no installed package registers."""

    def __str__(self) -> str:
        names = available()
        hint = ("; no task is registered at all: reinstall searchmgr (`pip install -e .`) so its entry points "
                "appear") if not names else ""
        return (f"unknown task {shorten(self.args[0])}; choose one of {names}, or give a plug-in as "
                f"package.module:attr or path/to/file.py:attr{hint}")


class PluginImportError(TaskError):
    """The plug-in's module or file is missing or fails to import."""


class NotATask(TaskError):
    """The plug-in's attribute is missing or is not a Task subclass, instance or factory."""


class InvalidTask(TaskError):
    """A task whose declarations break the contract (surface, base recipe, objective ...)."""


class TaskOptionsError(TaskError):
    """Options that the task's options model refuses."""


# -- the registry (entry points) -------------------------------------------------------
def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    """Registered task names whose module is present in this installation."""
    return sorted(name for name, ep in _entry_points().items() if importlib.util.find_spec(ep.module) is not None)


def is_reference(text: str) -> bool:
    """Whether ``text`` is a ``module:attr`` or ``file.py:attr`` reference rather than a registered name."""
    return ":" in text


# -- importing -------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _import_file(path_text: str, reference: str) -> tuple[Any, TaskSource]:
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise PluginImportError(f"task file {path} does not exist (task={reference}); give a path relative to "
                                f"the current directory {Path.cwd()} or an absolute one")
    if path.suffix != ".py":
        raise PluginImportError(f"task file {path} is not a .py file; give path/to/file.py:attr")
    sha = _sha256(path)
    name = f"{PLUGIN_MODULE_PREFIX}{path.stem}_{sha[:12]}"
    module = sys.modules.get(name)
    if module is None:
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as e:  # SystemExit: a plug-in that calls sys.exit() on import
            del sys.modules[name]
            raise PluginImportError(f"importing task file {path} failed: {type(e).__name__}: {e}; fix the file "
                                    "(run `python " + str(path) + "` to see the traceback)") from e
    return module, TaskSource(f"{path}:{reference.rpartition(':')[2]}", SourceKind.FILE, name, str(path), sha)


def _import_module(name: str, reference: str) -> tuple[Any, TaskSource]:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):  # a parent package that is missing, or an empty name
        spec = None
    if spec is None:
        raise PluginImportError(f"no module named {name!r} (task={reference}) on the Python path {sys.path}; "
                                "install its package in this environment, add its folder to PYTHONPATH, or give "
                                "the file as path/to/file.py:attr")
    try:
        module = importlib.import_module(name)
    except Exception as e:
        raise PluginImportError(f"importing task module {name} ({spec.origin}) failed: {type(e).__name__}: {e}; "
                                "fix the module or install what it imports") from e
    return module, TaskSource(reference, SourceKind.MODULE, name, getattr(module, "__file__", None))


def _attribute(module: Any, attr: str, where: str) -> Any:
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            found = sorted(n for n, v in vars(module).items()
                           if (inspect.isclass(v) and issubclass(v, Task) and v.__module__ == module.__name__)
                           or isinstance(v, Task))
            raise NotATask(f"{where} has no attribute {attr!r}; its tasks are {found} (a Task subclass, instance "
                           "or zero-argument factory)")
        obj = getattr(obj, part)
    return obj


def load(reference: str) -> tuple[Any, TaskSource]:
    """Import what ``reference`` names (not yet built or checked) and where it came from."""
    if not is_reference(reference):
        ep = _entry_points().get(reference)
        if ep is None or importlib.util.find_spec(ep.module) is None:
            raise UnknownTask(reference)
        module, _ = _import_module(ep.module, reference)
        return _attribute(module, ep.attr, f"entry point {reference} ({ep.value})"), TaskSource(
            reference, SourceKind.ENTRY_POINT, ep.module, getattr(module, "__file__", None))
    left, _, attr = reference.rpartition(":")
    if not left or not attr:
        raise PluginImportError(f"task={reference!r} is not module:attr or path/to/file.py:attr")
    is_file = left.endswith(".py") or "/" in left or "\\" in left
    module, source = _import_file(left, reference) if is_file else _import_module(left, reference)
    where = f"file {source.path}" if is_file else f"module {source.module} ({source.path})"
    return _attribute(module, attr, where), source


def reference_of(task: Task) -> str:
    """The reference that re-imports ``task``'s class: ``module:Class``, or ``file.py:Class`` when the
    class lives in a script or a file-imported plug-in."""
    if isinstance(task, CheckedTask):
        return task.source.reference
    cls = type(task)
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None)
    if (cls.__module__ == "__main__" or cls.__module__.startswith(PLUGIN_MODULE_PREFIX)) and file:
        return f"{Path(file).resolve()}:{cls.__qualname__}"
    return f"{cls.__module__}:{cls.__qualname__}"


# -- building and checking ---------------------------------------------------------------
def _build(obj: Any, reference: str, options: Mapping[str, Any]) -> Task:
    if inspect.isclass(obj) and issubclass(obj, Task):
        if inspect.isabstract(obj):
            missing = sorted(obj.__abstractmethods__)
            raise InvalidTask(f"task {reference} is abstract: implement {missing} (see docs/tasks.md)")
        unknown = sorted(set(options) - set(obj.Options.model_fields))
        if unknown:
            raise TaskOptionsError(
                f"unknown key(s) {unknown}: not a search key (see `searchmgr explore --help`) nor an option of task "
                f"{reference} ({sorted(obj.Options.model_fields)})")
        try:
            opts = obj.Options(**options)
        except ValidationError as e:
            raise TaskOptionsError(f"bad options for task {reference}: {_errors(e)}; its options are "
                                   f"{sorted(obj.Options.model_fields)}") from None
        try:
            return obj(opts)
        except ValueError as e:
            raise TaskOptionsError(f"task {reference}: {e}") from None
        except TypeError as e:  # an __init__ that wants more than the options
            raise NotATask(f"task {reference} could not be built from its options alone ({e}); give a zero-argument "
                           "factory instead, or, for a run started with explore(task=instance), resume it with "
                           "explore(task=<the same instance>, resume=RUN)") from None
    if isinstance(obj, Task):
        task = obj
    elif inspect.isclass(obj):
        raise NotATask(f"{reference} is the class {obj.__qualname__}, not a subclass of searchmgr.tasks.Task; "
                       "derive it from Task (see docs/tasks.md)")
    elif callable(obj):
        if any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
               for p in _parameters(obj)):
            raise NotATask(f"{reference} is a callable that needs arguments; a task factory takes none")
        try:
            made = obj()
        except Exception as e:
            raise InvalidTask(f"the task factory {reference} failed: {type(e).__name__}: {e}") from e
        if not isinstance(made, Task):
            raise NotATask(f"the factory {reference} returned {type(made).__name__}, not a searchmgr.tasks.Task "
                           "instance")
        task = made
    else:
        raise NotATask(f"{reference} is a {type(obj).__name__}, not a Task subclass, instance or zero-argument "
                       "factory (see docs/tasks.md)")
    # an instance carries its options: only the ones it already has may be given (resume gives them all)
    have = task.options.model_dump(mode="json") if isinstance(getattr(task, "options", None), TaskOptions) else {}
    differ = sorted(k for k, v in options.items() if have.get(k, object()) != v)
    if differ:
        raise TaskOptionsError(f"task {reference} is a ready-made instance; its options {differ} cannot be set "
                               f"(it has {have}); make the reference a Task subclass to take options")
    return task


def _parameters(fn: Any) -> list[inspect.Parameter]:
    try:
        return list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # builtins without a signature: try calling them
        return []


def validate(task: Task, reference: str) -> None:
    """Check everything a task declares; raise :class:`InvalidTask` naming the fix."""
    problems = []
    if not isinstance(getattr(task, "name", None), str) or not task.name:
        problems.append("set the class attribute name = '<short name>'")
    if not isinstance(getattr(task, "family", None), Family):
        problems.append(f"family must be one of {[f.name for f in Family]} (Family.SUPERVISED ...), "
                        f"not {getattr(task, 'family', None)!r}")
    if not isinstance(getattr(task, "options", None), TaskOptions):
        problems.append("call super().__init__(options) in __init__ (the task's options are missing)")
    if not isinstance(getattr(task, "description", None), str):
        problems.append("set description = '<what is trained, on what, towards which goal>' (it goes into prompts)")
    obj = getattr(task, "objective", None)
    if not isinstance(obj, Objective) or not isinstance(obj.direction, Direction):
        problems.append("objective must be Objective('val/<metric>', Direction.MINIMIZE or MAXIMIZE, "
                        "'test/<metric>')")
    else:
        bad = [m for m in (obj.metric, obj.test_metric) if not is_namespaced(m)]
        if bad:
            problems.append(f"objective metrics {bad} need a namespace: name them like 'val/loss' and 'test/loss'")
    if problems:
        raise InvalidTask(f"task {reference}: " + "; ".join(problems))
    from searchmgr.surface import ActionSurface, RecipeError

    try:
        surface = task.surface
        base = task.base_recipe()
        defaults = task.search_defaults()
    except (ValueError, TypeError, KeyError) as e:
        raise InvalidTask(f"task {reference}: {type(e).__name__}: {e}") from e
    if not isinstance(surface, ActionSurface) or not surface.knobs:
        raise InvalidTask(f"task {reference}: surface must be an ActionSurface with at least one Knob, "
                          f"not {surface!r}")
    try:
        surface.check(base)
    except RecipeError as e:
        raise InvalidTask(f"task {reference}: its base recipe does not fit its action surface: {e}; move the base "
                          "value inside the knob's bounds or widen them") from None
    if not isinstance(defaults, SearchDefaults):
        raise InvalidTask(f"task {reference}: search_defaults() must return SearchDefaults(segment_steps=..., "
                          f"max_depth=..., budget_steps=..., eval_every=...), not {defaults!r}")


def load_task(reference: str, options: Mapping[str, Any] | None = None, instance: Task | None = None) -> Task:
    """Import, build and check the task ``reference`` names (or ``instance``, recorded under ``reference``);
    returns it wrapped in a :class:`CheckedTask` whose ``source`` is its provenance. Raises :class:`TaskError`."""
    options = dict(options or {})
    if isinstance(instance, CheckedTask):
        instance = instance.inner
    if instance is not None:
        task = _build(instance, reference, options)
        module = type(instance).__module__
        file = getattr(sys.modules.get(module), "__file__", None)
        source = TaskSource(reference, SourceKind.INSTANCE, module, file, _sha256(Path(file)) if file else None)
    else:
        obj, source = load(reference)
        task = _build(obj, source.reference, options)
    if isinstance(task, CheckedTask):
        task = task.inner
    validate(task, source.reference)
    return CheckedTask(task, source)


def task_class(name: str) -> type[Task]:
    """The class a reference names (a built task's class for instances and factories)."""
    obj, source = load(name)
    return obj if inspect.isclass(obj) else type(_build(obj, source.reference, {}))


def make_task(name: str, options: Mapping[str, Any] | None = None) -> Task:
    """Instantiate task ``name`` (a registered name or a plug-in reference) with validated ``options``."""
    return load_task(name, options).inner


def source_change(info: Mapping[str, Any], task: Task) -> str | None:
    """A note when a resumed run's plug-in file differs from the one recorded at creation, else ``None``."""
    then, now = (info or {}).get("task_source") or {}, getattr(task, "source", None)
    if now is None or not then.get("sha256") or then.get("sha256") == now.sha256:
        return None
    return (f"the task's file changed since the run was created: {then.get('path')} had sha256 "
            f"{then['sha256'][:12]}..., {now.path} now has {(now.sha256 or '?')[:12]}...; resuming with the new code")


def stored_objective(run: Mapping[str, Any]) -> Objective:
    """The objective of a stored run (its ``searches`` row): recorded in its info, else its task class's."""
    data = (run.get("info") or {}).get("objective")
    return Objective.from_dict(data) if data else task_class(run["task"]).objective


def _errors(e: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, err['loc'])) or 'value'}: {err['msg']}" for err in e.errors())


__all__ = [
    "Direction", "Family", "Objective", "OnEval", "Segment", "SegmentResult", "SearchDefaults", "Task",
    "TaskOptions", "TieBreak", "TaskError", "UnknownTask", "PluginImportError", "NotATask", "InvalidTask",
    "TaskOptionsError", "is_namespaced", "SourceKind", "TaskSource", "ENTRY_POINT_GROUP", "available", "is_reference", "load",
    "load_task", "make_task", "reference_of", "source_change", "stored_objective", "task_class", "validate",
]
