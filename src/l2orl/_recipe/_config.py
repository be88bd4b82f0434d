"""`MetaTrainConfig`: a whole meta-training run as one frozen, checked value of nested
specs, read from and written to JSON."""

import dataclasses
import json
import os
import re
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .._lopt import AbstractLearnedOptimizer
from ._algorithms import ALGORITHMS, StrategySpec, TruncatedTrainingSpec, read_algorithm
from ._checks import RecipeError, at
from ._flat import from_flat, is_flat
from ._parts import (
    EstimatorSpec,
    EvaluationSpec,
    MetaLossSpec,
    OptimizerSpec,
    RunSpec,
    ScheduleSpec,
    TaskSpec,
)
from ._spec import _Spec, read_list, reads

_PATH = re.compile(r"[A-Za-z_]\w*(\[\d+\])*(\.[A-Za-z_]\w*(\[\d+\])*)*")

_NAMED = {
    ("algorithm", "estimator"): EstimatorSpec,
    ("algorithm", "schedule"): ScheduleSpec,
    ("algorithm", "strategy"): StrategySpec,
    ("meta_loss",): MetaLossSpec,
}
"""The specs below the algorithm whose `name` decides which other keys they take."""


def parse_path(path: str) -> tuple[str | int, ...]:
    """`"tasks[1].env"` as `("tasks", 1, "env")`. **Raises:** `ValueError` if malformed."""
    if not (isinstance(path, str) and _PATH.fullmatch(path)):
        raise RecipeError(
            (), f"{path!r} is not a setting's path (e.g. algorithm.schedule.unroll, tasks[0].env)"
        )
    return tuple(int(p) if p.isdigit() else p for p in re.findall(r"[A-Za-z_]\w*|\d+", path))


def _keys_for(container: tuple, name: Any) -> tuple[str, ...] | None:
    """The keys the spec at `container` takes once named `name` (None: any it has)."""
    if container == ("algorithm",):
        return ALGORITHMS[name].keys_for(name) if name in ALGORITHMS else None
    cls = _NAMED.get(container)
    return None if cls is None else cls.keys_for(name)


def _child(node: Any, part: str | int, where: tuple, last: bool, empty: Any) -> Any:
    """`node[part]`, created as `empty` where missing (an index may be the list's length:
    a new item)."""
    if isinstance(part, int):
        if not isinstance(node, list):
            raise RecipeError(where, f"is not a list, so [{part}] names nothing")
        if part > len(node):
            raise RecipeError((*where, part), f"out of range: the list holds {len(node)}")
        if part == len(node):
            node.append(empty)
        return node[part] if not last else node
    if not isinstance(node, dict):
        raise RecipeError(where, f"is {node!r}, not an object, so .{part} names nothing")
    return node.setdefault(part, empty) if not last else node


def set_path(data: dict, path: tuple, value: Any) -> None:
    """Set the setting at `path` of the JSON recipe `data` to `value` (in place). Naming a
    spec anew (its `name`) drops the keys the new one does not take."""
    node = data
    for i, part in enumerate(path[:-1]):
        node = _child(node, part, path[:i], False, [] if isinstance(path[i + 1], int) else {})
    last = path[-1]
    node = _child(node, last, path[:-1], True, None)
    if last == "name" and isinstance(node, dict) and node.get("name") != value:
        keys = _keys_for(path[:-1], value)
        for key in [k for k in node if keys is not None and k not in keys]:
            del node[key]
    node[last] = value


def _load(source: str | os.PathLike) -> dict:
    path = Path(source)
    if not path.is_file():
        raise RecipeError((), f"no config file at {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise RecipeError((), f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise RecipeError((), f"{path} must hold a JSON object of settings")
    return data


def _typed(config: Any, field: str, cls: type | tuple[type, ...]) -> None:
    value = getattr(config, field)
    if not isinstance(value, cls):
        names = [c.__name__ for c in (cls if isinstance(cls, tuple) else (cls,))]
        raise RecipeError((field,), f"must be an l2orl.{' or l2orl.'.join(names)}, got {value!r}")


@typing.no_type_check
@dataclasses.dataclass(frozen=True)
class MetaTrainConfig(_Spec):
    """A meta-training recipe: which optimizer, on which tasks, trained by which algorithm
    towards which meta-loss, for how long, and how the result is evaluated. One frozen spec
    per part, each checked when made, with errors that name the setting's JSON path
    (`algorithm.estimator.coordinate_fraction: must be 'auto', null or in (0, 1], got 2`).
    Read from and written to JSON (the `l2orl meta-train --config` format) with
    `from_json` / `to_json`; changed by path with `with_value`.

    The defaults are the reference's Catch setting: Optim4RL on Catch, 64 single-env A2C
    agents in a staggered pipeline (reset interval 32), `K = 4` inner updates per meta-step,
    truncated BPTT of the agents' own loss (a sampled 1/16 of the coordinates), meta-Adam
    3e-3 behind an element-wise clip of 1, 78 meta-steps; then a 3-seed, 390-update
    comparison against Adam and RMSProp.

    **Fields:** `optimizer` ([`l2orl.OptimizerSpec`][]), `tasks` (a tuple of
    [`l2orl.TaskSpec`][], one per task), `algorithm` ([`l2orl.TruncatedTrainingSpec`][] or
    [`l2orl.LifetimeTrainingSpec`][]), `meta_loss` ([`l2orl.MetaLossSpec`][]), `run`
    ([`l2orl.RunSpec`][]), `evaluation` ([`l2orl.EvaluationSpec`][]).

    **Raises:** `ValueError` naming the setting's path and the value expected.
    """

    optimizer: OptimizerSpec = dataclasses.field(default_factory=OptimizerSpec)
    tasks: tuple[TaskSpec, ...] = dataclasses.field(
        default_factory=lambda: (TaskSpec(),), metadata=reads(read_list(TaskSpec))
    )
    algorithm: Any = dataclasses.field(
        default_factory=TruncatedTrainingSpec, metadata=reads(read_algorithm)
    )
    meta_loss: MetaLossSpec = dataclasses.field(default_factory=MetaLossSpec)
    run: RunSpec = dataclasses.field(default_factory=RunSpec)
    evaluation: EvaluationSpec = dataclasses.field(default_factory=EvaluationSpec)

    def __post_init__(self):
        for field, cls in (
            ("optimizer", OptimizerSpec),
            ("algorithm", tuple(ALGORITHMS.values())),
            ("meta_loss", MetaLossSpec),
            ("run", RunSpec),
            ("evaluation", EvaluationSpec),
        ):
            _typed(self, field, cls)
        if isinstance(self.tasks, list):
            self._set("tasks", tuple(self.tasks))
        if not (isinstance(self.tasks, tuple) and self.tasks):
            raise RecipeError(("tasks",), f"must be a non-empty list of tasks, got {self.tasks!r}")
        for i, task in enumerate(self.tasks):
            if not isinstance(task, TaskSpec):
                raise RecipeError(("tasks", i), f"must be an l2orl.TaskSpec, got {task!r}")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise RecipeError(("tasks",), f"each (env, learner) must appear once, got {names}")
        self._check(self.make_optimizer())

    def _check(self, optimizer: AbstractLearnedOptimizer) -> None:
        """What only the parts together can check."""
        with at("meta_loss"):
            meta_loss = self.make_meta_loss()
        with at("algorithm"):
            self.algorithm.check(optimizer, meta_loss, any(t.physics_gradient for t in self.tasks))

    @classmethod
    def from_json(cls, source: str | os.PathLike | dict[str, Any]) -> "MetaTrainConfig":
        """A config from a JSON file's path or a parsed dict, in the nested form `to_json`
        writes or in the flat form of older recipes and recorded settings (one key per
        setting: `env`, `agents`, `unroll`, `meta_lr`, ...); missing keys take the defaults.

        **Raises:** `ValueError` naming a missing or malformed file, or the path of an
        unknown key or a bad value."""
        data = source if isinstance(source, dict) else _load(source)
        if is_flat(data):
            data = from_flat(data)
        return super().from_json(data)

    def to_json(self) -> dict[str, Any]:
        """The config as a JSON-ready dict in the nested form (each named part with the
        options it takes)."""
        data = super().to_json()
        name = self.meta_loss.name or self.algorithm.DEFAULT_META_LOSS
        data["meta_loss"] = {
            k: v for k, v in data["meta_loss"].items() if k in MetaLossSpec.keys_for(name)
        }
        return data

    def with_values(
        self, changes: Mapping[str, Any] | Iterable[tuple[str, Any]]
    ) -> "MetaTrainConfig":
        """A copy with each setting of `changes` (a mapping, or pairs) at its JSON path
        (`"algorithm.estimator.std"`, `"tasks[0].env"`; an index one past the end adds a
        task) set to its value (JSON values: objects for whole specs), in order, checked
        once at the end. Naming a part
        anew (`"algorithm.name"`, `"algorithm.estimator.name"`, `"meta_loss.name"`, ...) drops
        the settings the new part does not take.

        **Raises:** `ValueError` naming the path of a bad key or value."""
        data = self.to_json()
        for path, value in changes.items() if isinstance(changes, Mapping) else changes:
            set_path(data, parse_path(path), value)
        return type(self).from_json(data)

    def with_value(self, path: str, value: Any) -> "MetaTrainConfig":
        """A copy with the setting at `path` set to `value` (see `with_values`)."""
        return self.with_values({path: value})

    def run_settings(self) -> dict[str, Any]:
        """What a run records and a resumed run must match: the nested JSON but where it is
        written (`run.out`), what it keeps (`run.keep_checkpoints`), how it is evaluated
        (`evaluation`) and, unless the algorithm follows it (a curriculum schedule), how long
        it runs (`run.meta_steps`), so that a finished run can be continued to more
        meta-steps."""
        data = self.to_json()
        del data["evaluation"], data["run"]["out"], data["run"]["keep_checkpoints"]
        if not self.algorithm.follows_run_length():
            del data["run"]["meta_steps"]
        return data

    def make_optimizer(self) -> AbstractLearnedOptimizer:
        """The preset at its step size, initialised from `run.seed`."""
        return self.optimizer.build(self.run.seed)

    def make_tasks(self) -> tuple[Any, ...]:
        """One [`l2orl.MetaTask`][] per task spec."""
        tasks = []
        for i, task in enumerate(self.tasks):
            with at("tasks", i):
                tasks.append(task.build())
        return tuple(tasks)

    def make_meta_loss(self) -> Any:
        """The meta-loss (the algorithm's own where `meta_loss.name` is null)."""
        return self.meta_loss.build(self.algorithm.DEFAULT_META_LOSS)

    def make_algorithm(self, optimizer: AbstractLearnedOptimizer | None = None) -> Any:
        """The meta-algorithm this config describes ([`l2orl.TruncatedTraining`][] or
        [`l2orl.LifetimeTraining`][]), for `optimizer` if given (e.g. a variant's), else
        `make_optimizer()`."""
        if optimizer is None:
            optimizer = self.make_optimizer()
        else:
            self._check(optimizer)
        tasks, meta_loss = self.make_tasks(), self.make_meta_loss()
        with at("algorithm"):
            return self.algorithm.build(optimizer, tasks, meta_loss, run=self.run)

    def compiler_options(self) -> dict[str, Any] | None:
        """The XLA options the run compiles with (`run.low_memory`)."""
        return self.run.compiler_options()

    def meta_train(
        self, optimizer: AbstractLearnedOptimizer | None = None, progress: bool = True
    ) -> tuple[Any, Any]:
        """Meta-train into `run.out` with [`l2orl.meta_train`][] (resuming a run there);
        **returns** the algorithm and its final state."""
        from .._meta import meta_train

        algorithm = self.make_algorithm(optimizer)
        state = meta_train(
            algorithm,
            self.run.meta_steps,
            self.run.out,
            key=self.run.seed,
            keep_checkpoints=self.run.keep_checkpoints,
            progress=progress,
            settings=self.run_settings(),
            compiler_options=self.compiler_options(),
        )
        return algorithm, state
