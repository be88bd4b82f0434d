"""The suites that decide which learned optimizer ships: tasks, seeds, budgets, baselines."""

import dataclasses
import json
import os
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optax

from .._lopt import AbstractLearnedOptimizer
from .._utils import check_positive_int
from ._evaluate import FINAL_FRACTION, Evaluation, OptimizerResult, bootstrap_ci, compare
from ._learner import AbstractActorCritic, NetworkSpec
from ._make import make
from ._ppo import PPO
from ._registry import default_learner, env_family

_CLIPS = {"value": optax.clip, "global_norm": optax.clip_by_global_norm}

_CANDIDATE = "candidate"  # the row of the optimizer `evaluate_suite` scores


@dataclasses.dataclass(frozen=True)
class SuiteTask:
    """One task of a [`l2orl.rl.Suite`][]: an environment, the learner that trains on it from
    scratch, for how long, on which seeds, and the Adam settings a learned optimizer is
    compared with.

    **Fields:** `env` (a name [`l2orl.rl.make`][] takes; the task's name), `learner`,
    `n_updates` (the budget, in learner updates), `lr` (Adam's learning rate, and the unit of
    a learned optimizer's step size `α`), `seeds` (runs per optimizer), `key` (the seeds'
    root), `clip` (every optimizer's gradients pass `optax.clip(clip)`, or
    `optax.clip_by_global_norm(clip)` with `clip_by="global_norm"`; `None`: no clip),
    `clip_by` (`"value"` or `"global_norm"`), `env_kwargs` (for `make`), `target` (a return
    worth reaching, for steps-to-target reports; `None`: none).

    Every run is scored by its mean return over its last [`l2orl.rl.FINAL_FRACTION`][] of
    updates (`scored_updates` of them).

    **Raises:** `ValueError` for an unknown env, a non-positive budget, lr, seed count or
    clip, or an unknown `clip_by`.
    """

    env: str
    learner: AbstractActorCritic
    n_updates: int
    lr: float
    seeds: int = 3
    key: int = 0
    clip: float | None = None
    clip_by: str = "value"
    env_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    target: float | None = None

    def __post_init__(self):
        env_family(self.env)
        if not isinstance(self.learner, AbstractActorCritic):
            raise ValueError(f"{self.env}: learner must be an actor-critic, got {self.learner!r}")
        check_positive_int("n_updates", self.n_updates)
        check_positive_int("seeds", self.seeds)
        if not (isinstance(self.lr, int | float) and self.lr > 0):
            raise ValueError(f"{self.env}: lr must be positive, got {self.lr!r}")
        if self.clip_by not in _CLIPS:
            raise ValueError(
                f"{self.env}: clip_by must be one of {sorted(_CLIPS)}, got {self.clip_by!r}"
            )
        if self.clip is not None and not self.clip > 0:
            raise ValueError(f"{self.env}: clip must be positive or None, got {self.clip!r}")
        object.__setattr__(self, "env_kwargs", dict(self.env_kwargs))

    @property
    def name(self) -> str:
        """The task's name: its env's."""
        return self.env

    @property
    def scored_updates(self) -> int:
        """How many of the last updates score a run: `n_updates` × `FINAL_FRACTION`, at
        least one."""
        return max(1, round(self.n_updates * FINAL_FRACTION))

    def make_env(self):
        """The task's environment."""
        return make(self.env, **self.env_kwargs)

    def clip_transform(self) -> optax.GradientTransformation | None:
        """The clip every optimizer's gradients pass, or `None`."""
        return None if self.clip is None else _CLIPS[self.clip_by](self.clip)

    @typing.no_type_check
    def compare(
        self,
        optimizers: Mapping[str, optax.GradientTransformation | AbstractLearnedOptimizer],
        *,
        seeds: int | None = None,
        key: int | None = None,
        n_updates: int | None = None,
        progress: bool = True,
    ) -> Evaluation:
        """`optimizers` and Adam at `lr` (the row `"adam <lr>"`) train the task's learner from
        scratch on the same seeds, all behind the task's clip, with
        [`l2orl.rl.compare`][]. `seeds`, `key` and `n_updates` override the task's."""
        return compare(
            optimizers,
            self.env,
            self.n_updates if n_updates is None else n_updates,
            lr=self.lr,
            baselines=("adam",),
            clip=self.clip_transform(),
            learner=self.learner,
            env=self.make_env(),
            seeds=self.seeds if seeds is None else seeds,
            key=self.key if key is None else key,
            progress=progress,
        )


@dataclasses.dataclass(frozen=True)
class Suite:
    """A named tuple of [`l2orl.rl.SuiteTask`][]s, one per environment; index it by a task's
    name (`suite["Catch"]`) or iterate over its tasks.

    **Raises:** `ValueError` for no tasks, or an environment twice.
    """

    name: str
    tasks: tuple[SuiteTask, ...]

    def __post_init__(self):
        object.__setattr__(self, "tasks", tuple(self.tasks))
        if not self.tasks or not all(isinstance(t, SuiteTask) for t in self.tasks):
            raise ValueError(f"suite {self.name!r} needs at least one SuiteTask")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"suite {self.name!r} has a task twice: {list(self.names)}")

    @property
    def names(self) -> tuple[str, ...]:
        """The tasks' names, in order."""
        return tuple(t.name for t in self.tasks)

    def __getitem__(self, name: str) -> SuiteTask:
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)

    def __iter__(self) -> Iterator[SuiteTask]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def select(self, names: Sequence[str]) -> "Suite":
        """The suite with only the tasks `names`, in that order.

        **Raises:** `ValueError` naming unknown tasks and the suite's."""
        unknown = [n for n in names if n not in self.names]
        if unknown:
            raise ValueError(
                f"unknown tasks {unknown} in the {self.name} suite: {list(self.names)}"
            )
        return Suite(self.name, tuple(self[n] for n in names))


def _validation() -> Suite:
    """Catch and small_dense_short (A2C, the CLI's `evaluate` settings) and the test suite's
    CartPole-v1 and brax inverted_pendulum, on other seeds (root 100)."""
    test = SUITES["test"]
    on_validation_seeds = lambda task: dataclasses.replace(task, key=100)  # noqa: E731
    return Suite(
        "validation",
        (
            SuiteTask("Catch", default_learner("Catch"), 390, 1e-3, key=100, target=0.9),
            SuiteTask(
                "small_dense_short",
                default_learner("small_dense_short", n_envs=64),
                300, 3e-3, key=100, clip=1.0, target=0.0,
            ),
            on_validation_seeds(test["CartPole-v1"]),
            on_validation_seeds(test["brax:inverted_pendulum"]),
        ),
    )  # fmt: skip


def _test() -> Suite:
    """PPO on gymnax CartPole-v1 and Breakout-MinAtar (purejaxrl's settings, fewer steps on
    MinAtar) and on brax inverted_pendulum and hopper (brax's settings, element-wise clip 1),
    and A2C on small_dense_long; seeds from root 0."""
    minatar = NetworkSpec("mlp", (128, 128), "relu", value_hidden_sizes=(128, 128))
    brax = lambda backend: {"backend": backend, "episode_length": 1000}  # noqa: E731
    return Suite(
        "test",
        (
            SuiteTask(
                "CartPole-v1",
                PPO(n_envs=4, rollout_length=128, n_epochs=4, n_minibatches=4),
                976, 2.5e-4, clip=0.5, clip_by="global_norm", target=475.0,
            ),  # 5e5 env-steps
            SuiteTask(
                "Breakout-MinAtar",
                PPO(n_envs=64, rollout_length=128, n_epochs=4, n_minibatches=8, network=minatar),
                244, 5e-4, clip=0.5, clip_by="global_norm", target=10.0,
            ),  # 2e6 env-steps
            SuiteTask(
                "brax:inverted_pendulum",
                default_learner("brax:inverted_pendulum"),
                100, 3e-4, clip=1.0, env_kwargs=brax("generalized"), target=900.0,
            ),  # 2.05e5 env-steps
            SuiteTask(
                "brax:hopper",
                default_learner("brax:hopper", n_envs=128),
                250, 3e-4, clip=1.0, env_kwargs=brax("spring"), target=400.0,
            ),  # 1.02e6 env-steps
            SuiteTask(
                "small_dense_long", default_learner("small_dense_long"), 488, 3e-3,
                clip=1.0, target=0.0,
            ),  # 5e6 env-steps
        ),
    )  # fmt: skip


class _Suites(Mapping[str, Suite]):
    """Suites by name, each built on first use (learners hold arrays: building them at import
    would start JAX's backend)."""

    def __init__(self, builders: Mapping[str, Callable[[], Suite]]):
        self._builders, self._built = dict(builders), {}

    def __getitem__(self, name: str) -> Suite:
        if name not in self._built:
            self._built[name] = self._builders[name]()
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._builders)

    def __len__(self) -> int:
        return len(self._builders)

    def __repr__(self) -> str:
        return f"SUITES({', '.join(self._builders)})"


SUITES: Mapping[str, Suite] = _Suites({"validation": _validation, "test": _test})
"""The suites by name. `"validation"`: every candidate is chosen on it (Catch,
small_dense_short, CartPole-v1, brax inverted_pendulum; seeds from root 100). `"test"`: run
once, on what validation chose, and reported (CartPole-v1, Breakout-MinAtar, brax
inverted_pendulum and hopper, small_dense_long; seeds from root 0). Three seeds per task."""


@dataclasses.dataclass(frozen=True)
class PairedDifference:
    """The mean over seeds of `a − b` (two optimizers' final returns on the same seeds) and
    its 95 % percentile-bootstrap interval `ci`."""

    mean: float
    ci: tuple[float, float]


def paired_difference(a: np.ndarray, b: np.ndarray) -> PairedDifference:
    """`a − b` seed by seed (the same seeds in both), its mean and 95 % bootstrap CI.

    **Raises:** `ValueError` if `a` and `b` differ in shape."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values must match in shape, got {a.shape} and {b.shape}")
    diff = a - b
    return PairedDifference(float(np.mean(diff)), bootstrap_ci(diff))


@dataclasses.dataclass(frozen=True)
class TaskEvaluation:
    """One task of a [`l2orl.rl.SuiteEvaluation`][]: the task, its
    [`l2orl.rl.Evaluation`][] (rows: `"candidate"`, the learned baselines, `"adam <lr>"`) and
    the candidate's paired difference to each other row, by row name."""

    task: SuiteTask
    evaluation: Evaluation
    differences: dict[str, PairedDifference]

    @property
    def candidate(self) -> OptimizerResult:
        """The candidate's row."""
        return self.evaluation.results[_CANDIDATE]

    @property
    def adam(self) -> OptimizerResult:
        """Adam's row, at the task's `lr`."""
        return self.evaluation.results[f"adam {self.task.lr:g}"]

    @property
    def within_adam_ci_or_better(self) -> bool:
        """Whether the candidate's mean is at least the lower end of Adam's 95 % CI."""
        return bool(self.candidate.mean >= self.adam.mean_ci[0])

    def to_dict(self) -> dict[str, Any]:
        """The figures as a JSON-ready dict (no curves: `evaluation.to_json` has them)."""
        return {
            "key": self.task.key,
            "seeds": self.evaluation.seeds,
            "n_updates": int(self.evaluation.env_steps.shape[0]),
            "env_steps": int(self.evaluation.env_steps[-1]),
            "final": {
                name: {"mean": r.mean, "ci95": list(r.mean_ci), "per_seed": r.final.tolist()}
                for name, r in self.evaluation.results.items()
            },
            "candidate_minus": {
                name: {"mean": d.mean, "ci95": list(d.ci)} for name, d in self.differences.items()
            },
            "within_adam_ci_or_better": self.within_adam_ci_or_better,
        }


@dataclasses.dataclass(frozen=True)
class SuiteEvaluation:
    """The result of [`l2orl.rl.evaluate_suite`][]: the suite's name, `alpha_scale`, and a
    [`l2orl.rl.TaskEvaluation`][] per task run, by task name."""

    suite: str
    alpha_scale: float
    tasks: dict[str, TaskEvaluation]

    def table(self) -> str:
        """One line per task: the candidate's and each other row's mean final return, the
        paired differences with their CIs, and whether it is within Adam's CI or better."""
        lines = [
            f"{self.suite} suite: final return = mean of the last {FINAL_FRACTION:.0%} of each "
            "run; candidate - row: paired difference [95% CI]",
            "",
            "| task | candidate | rows | candidate - row | within Adam's CI or better |",
            "|---|---|---|---|---|",
        ]
        for name, t in self.tasks.items():
            rows = ", ".join(f"{n} {t.evaluation.results[n].mean:.3f}" for n in t.differences)
            diffs = ", ".join(
                f"{d.mean:+.3f} [{d.ci[0]:+.3f}, {d.ci[1]:+.3f}]" for d in t.differences.values()
            )
            lines.append(
                f"| {name} | {t.candidate.mean:.3f} | {rows} | {diffs} | "
                f"{'yes' if t.within_adam_ci_or_better else 'no'} |"
            )
        return "\n".join(lines)

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write each task's figures (`TaskEvaluation.to_dict`) to `path` as JSON."""
        data = {
            "suite": self.suite,
            "alpha_scale": self.alpha_scale,
            "final_fraction": FINAL_FRACTION,
            "tasks": {name: t.to_dict() for name, t in self.tasks.items()},
        }
        path = Path(path)
        path.write_text(json.dumps(data, indent=1))
        return path


@typing.no_type_check
def evaluate_suite(
    optimizer: AbstractLearnedOptimizer,
    suite: Suite | str,
    *,
    baselines: Mapping[str, AbstractLearnedOptimizer] | None = None,
    alpha_scale: float = 1.0,
    tasks: Sequence[str] | None = None,
    seeds: int | None = None,
    n_updates: int | None = None,
    progress: bool = True,
) -> SuiteEvaluation:
    """Score a learned optimizer on a suite against its baselines: per task, `optimizer` (the
    row `"candidate"`), each learned optimizer of `baselines` (say, the candidate's own
    untrained initialisation: `{"untrained": ...}`), all with step size
    `α = alpha_scale × lr`, and Adam at the task's `lr` train the task's learner from scratch
    on the task's seeds behind its clip ([`l2orl.rl.SuiteTask.compare`][]).

    **Arguments:** `optimizer`, `suite` (a [`l2orl.rl.Suite`][] or a name of
    [`l2orl.rl.SUITES`][]), `baselines` by row name, `alpha_scale`, `tasks` (a subset of the
    suite's, in order; default all), `seeds` and `n_updates` (override every task's),
    `progress`.

    **Returns:** a [`l2orl.rl.SuiteEvaluation`][], with the candidate's paired difference to
    every other row of each task.

    **Raises:** `ValueError` for an unknown suite or task, a baseline that is not a learned
    optimizer, or a baseline row named as the candidate's or Adam's.
    """
    if isinstance(suite, str):
        if suite not in SUITES:
            raise ValueError(f"unknown suite {suite!r}; available: {list(SUITES)}")
        suite = SUITES[suite]
    if tasks is not None:
        suite = suite.select(tasks)
    baselines = dict(baselines or {})
    for name, baseline in {_CANDIDATE: optimizer, **baselines}.items():
        if not isinstance(baseline, AbstractLearnedOptimizer):
            raise ValueError(
                f"{name!r} must be an l2orl learned optimizer (its α is set per task), got "
                f"{type(baseline).__name__}"
            )
    if not (isinstance(alpha_scale, int | float) and alpha_scale > 0):
        raise ValueError(f"alpha_scale must be positive, got {alpha_scale!r}")
    results = {}
    for task in suite:
        clash = {_CANDIDATE, f"adam {task.lr:g}"} & set(baselines)
        if clash:
            raise ValueError(f"baseline rows {sorted(clash)} clash with the candidate or Adam")
        alpha = alpha_scale * task.lr
        rows = {
            name: dataclasses.replace(opt, step_size=alpha)
            for name, opt in {_CANDIDATE: optimizer, **baselines}.items()
        }
        evaluation = task.compare(rows, seeds=seeds, n_updates=n_updates, progress=progress)
        ours = evaluation.results[_CANDIDATE].final
        differences = {
            name: paired_difference(ours, r.final)
            for name, r in evaluation.results.items()
            if name != _CANDIDATE
        }
        results[task.name] = TaskEvaluation(task, evaluation, differences)
    return SuiteEvaluation(suite.name, float(alpha_scale), results)
