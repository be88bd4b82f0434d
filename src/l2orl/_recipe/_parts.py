"""The recipe's specs of the optimizer, the tasks, the meta-loss, the run and the
evaluation, and of the truncated algorithm's parts (pipeline, estimator, schedule,
meta-optimizer)."""

import dataclasses
import typing
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import optax

from .._learner import AbstractLearner
from .._lopt import PRESETS, AbstractLearnedOptimizer
from .._meta import ESTIMATORS, FITNESS_SHAPINGS, META_LOSSES, PIPELINE_KINDS, SCHEDULES
from .._meta._coordinates import is_coordinatewise
from ._checks import (
    RecipeError,
    at,
    boolean,
    fraction,
    integer,
    non_negative_int,
    one_of,
    positive,
    positive_int,
    text,
)
from ._spec import _Spec

AUTO_COORDINATE_FRACTION = 0.0625
"""The fraction of coordinates `coordinate_fraction="auto"` back-propagates through."""

LOW_MEMORY_COMPILE = {"xla_cpu_use_fusion_emitters": False}
"""XLA options for `low_memory`: CPU's older fusion emitters."""


def _meta_ppo(env: str) -> AbstractLearner:
    """PPO for a meta-training agent: the env's default network and discount, 4 envs × 32
    steps, 2 epochs × 2 minibatches."""
    import l2orl.rl as rl

    default = rl.default_learner(env)
    return rl.PPO(
        n_envs=4,
        rollout_length=32,
        n_epochs=2,
        n_minibatches=2,
        gamma=default.gamma,
        network=default.network,
    )


def _meta_default(env: str) -> AbstractLearner:
    """The env's default learner with one env per agent (the reference's meta-training)."""
    import l2orl.rl as rl

    return rl.default_learner(env, n_envs=1)


LEARNERS: dict[str, Callable[[str], AbstractLearner]] = {
    "default": _meta_default,
    "ppo": _meta_ppo,
}
"""The meta-training agents' learners by the name a `TaskSpec` gives them."""


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def part_default(cls: type, field: str) -> Any:
    """The default of `cls`'s dataclass field `field` (a spec's default is its part's)."""
    return _fields(cls)[field].default


def check_options(spec: Any, registry: dict[str, type], name: str, options: tuple) -> None:
    """Each of `options` that `registry[name]` does not take keeps its default on `spec`."""
    takes = _fields(registry[name])
    defaults = _fields(type(spec))
    for option in options:
        if option not in takes and getattr(spec, option) != defaults[option].default:
            owners = sorted(k for k, cls in registry.items() if option in _fields(cls))
            raise RecipeError((option,), f"an option of {owners}, not {name!r}")


@typing.no_type_check
@dataclasses.dataclass(frozen=True)
class OptimizerSpec(_Spec):
    """The learned optimizer to meta-train: `preset`, a name of [`l2orl.PRESETS`][]
    (`"Optim4RL"`), at step size `step_size` `α` (1e-3); its initial meta-parameters come
    from the run's seed."""

    preset: str = "Optim4RL"
    step_size: float = 1e-3

    def __post_init__(self):
        one_of("preset", self.preset, PRESETS, "optimizer preset")
        self._set("step_size", positive("step_size", self.step_size))

    def build(self, seed: int) -> AbstractLearnedOptimizer:
        """The preset at `step_size`, initialised from `seed`."""
        return PRESETS[self.preset](step_size=self.step_size, key=jax.random.key(seed))


def task_name(env: str, learner: str) -> str:
    """A task's name: the env's, with `-<learner>` unless it is the default learner."""
    return env if learner == "default" else f"{env}-{learner}"


@typing.no_type_check
@dataclasses.dataclass(frozen=True)
class TaskSpec(_Spec):
    """One meta-training task: `env` (a name of [`l2orl.rl.make`][]; `"Catch"`), `learner`
    (`"default"`: the env's default learner with one env per agent; `"ppo"`: PPO agents of 4
    envs, the task named `<env>-ppo`), `reward_scale` (the gridworlds' reward factor, or
    null), `update_scale` (a multiplier of the agents' updates: the task's step size is
    `α × update_scale`; 1), `grad_clip` (element-wise clip of the agents' gradients before
    the optimizer, or null) and `physics_gradient` (brax envs only: the meta-gradient flows
    through the simulator; false)."""

    env: str = "Catch"
    learner: str = "default"
    reward_scale: float | None = None
    update_scale: float = 1.0
    grad_clip: float | None = None
    physics_gradient: bool = False

    def __post_init__(self):
        import l2orl.rl as rl  # the env registry (gymnax loads with it)

        text("env", self.env)
        with at("env"):
            options = rl.env_family(self.env).options  # raises, listing the available names
        one_of("learner", self.learner, LEARNERS, "learner")
        self._set("reward_scale", positive("reward_scale", self.reward_scale, optional=True))
        self._set("update_scale", positive("update_scale", self.update_scale))
        self._set("grad_clip", positive("grad_clip", self.grad_clip, optional=True))
        boolean("physics_gradient", self.physics_gradient)
        if self.reward_scale is not None and "reward_scale" not in options:
            raise RecipeError(
                ("reward_scale",), f"only for the gridworlds; {self.env!r} takes none"
            )
        if self.physics_gradient and "physics_gradient" not in options:
            raise RecipeError(
                ("physics_gradient",),
                f"only for brax envs ('brax:<name>'); {self.env!r} has no simulator to "
                "differentiate",
            )

    @property
    def name(self) -> str:
        """The task's name (`env`, or `<env>-<learner>`)."""
        return task_name(self.env, self.learner)

    def build(self) -> Any:
        """The [`l2orl.MetaTask`][]: the learner, the env with its options, the clip and
        scale."""
        import l2orl.rl as rl

        from .._meta import MetaTask

        options = {} if self.reward_scale is None else {"reward_scale": self.reward_scale}
        if self.physics_gradient:
            options["physics_gradient"] = True
        return MetaTask(
            self.name,
            LEARNERS[self.learner](self.env),
            rl.make(self.env, **options),
            grad_clip=self.grad_clip,
            update_scale=self.update_scale,
        )


@typing.no_type_check
@dataclasses.dataclass(frozen=True)
class PipelineSpec(_Spec):
    """Each task's agents: `agents` `N` (64), `reset_interval` `M` in meta-steps (32) and
    `kind` (a name of [`l2orl.PIPELINE_KINDS`][]: `"staggered"`, `"random"` or `"none"`),
    as [`l2orl.Pipeline`][]."""

    agents: int = 64
    reset_interval: int = 32
    kind: str = "staggered"

    def __post_init__(self):
        positive_int("agents", self.agents)
        positive_int("reset_interval", self.reset_interval)
        one_of("kind", self.kind, PIPELINE_KINDS, "pipeline kind")

    def build(self) -> Any:
        """The [`l2orl.Pipeline`][]."""
        from .._meta import Pipeline

        return Pipeline(self.agents, self.reset_interval, self.kind)


def coordinate_fraction(value: Any) -> float | str | None:
    """The one check of a `coordinate_fraction`: `"auto"`, None (autodiff) or a fraction in
    `(0, 1]`; **returns** it (a fraction as a float)."""
    if value is None or value == "auto":
        return value
    try:
        return fraction("coordinate_fraction", value)
    except RecipeError:
        raise RecipeError(
            ("coordinate_fraction",), f"must be 'auto', null or in (0, 1], got {value!r}"
        ) from None


_TES = ESTIMATORS["es"]


@typing.no_type_check
@dataclasses.dataclass(frozen=True)
class EstimatorSpec(_Spec):
    """The meta-gradient estimator: `name` (a name of [`l2orl.ESTIMATORS`][]; `"tbptt"`) and
    the options it takes, each the estimator's own default unless set.

    `tbptt` ([`l2orl.TruncatedBPTT`][]) takes `coordinate_fraction` (a fraction of the
    coordinates to back-propagate through, sampled; null for autodiff through the unroll; or
    `"auto"`, the default: 1/16 where the optimizer allows it, no task has
    `physics_gradient` and `remat` is off, else autodiff), `agents_per_chunk` and `remat`;
    `es` and `pes` take `std` and `fitness_shaping`. An option of another estimator must
    keep its default."""

    name: str = "tbptt"
    coordinate_fraction: float | str | None = "auto"
    agents_per_chunk: int | None = None
    remat: bool = False
    std: float = part_default(_TES, "std")
    fitness_shaping: str = part_default(_TES, "fitness_shaping")

    OPTIONS: ClassVar[tuple[str, ...]] = (
        "coordinate_fraction",
        "agents_per_chunk",
        "remat",
        "std",
        "fitness_shaping",
    )

    def __post_init__(self):
        one_of("name", self.name, ESTIMATORS, "estimator")
        self._set("coordinate_fraction", coordinate_fraction(self.coordinate_fraction))
        positive_int("agents_per_chunk", self.agents_per_chunk, optional=True)
        boolean("remat", self.remat)
        self._set("std", positive("std", self.std))
        one_of("fitness_shaping", self.fitness_shaping, FITNESS_SHAPINGS, "fitness shaping")
        check_options(self, ESTIMATORS, self.name, self.OPTIONS)
        fraction = self.coordinate_fraction
        self._part(fraction if isinstance(fraction, float) else None)  # its own checks

    @classmethod
    def keys_for(cls, name: Any) -> tuple[str, ...]:
        takes = _fields(ESTIMATORS[name]) if name in ESTIMATORS else cls.OPTIONS
        return ("name", *(o for o in cls.OPTIONS if o in takes))

    def _part(self, fraction: float | None) -> Any:
        options = {o: getattr(self, o) for o in self.keys_for(self.name)[1:]}
        if "coordinate_fraction" in options:
            options["coordinate_fraction"] = fraction
        return ESTIMATORS[self.name](**options)

    def build(self, optimizer: AbstractLearnedOptimizer, physics_gradient: bool = False) -> Any:
        """The estimator for `optimizer`, `"auto"` resolved (see above)."""
        fraction = self.coordinate_fraction
        if fraction == "auto":
            usable = (
                "coordinate_fraction" in self.keys_for(self.name)
                and not (self.remat or physics_gradient)
                and is_coordinatewise(optimizer)
            )
            fraction = AUTO_COORDINATE_FRACTION if usable else None
        return self._part(fraction)


@typing.no_type_check
@dataclasses.dataclass(frozen=True)
class ScheduleSpec(_Spec):
    """How many inner updates `K` each meta-step unrolls: `name` (a name of
    [`l2orl.SCHEDULES`][]: `"constant"` (`K = unroll`), `"log_uniform"` (`K` drawn in
    `[min_unroll, unroll]`) or `"curriculum"` (`K` from `min_unroll` to `unroll` over the
    run)), `unroll` (4) and `min_unroll` (1)."""

    name: str = "constant"
    unroll: int = 4
    min_unroll: int = 1

    def __post_init__(self):
        one_of("name", self.name, SCHEDULES, "schedule")
        positive_int("unroll", self.unroll)
        positive_int("min_unroll", self.min_unroll)
        if self.min_unroll > self.unroll:
            raise RecipeError(("min_unroll",), f"{self.min_unroll} exceeds unroll {self.unroll}")

    def build(self, meta_steps: int) -> Any:
        """The schedule over a run of `meta_steps`."""
        return SCHEDULES[self.name].from_range(self.min_unroll, self.unroll, meta_steps)

    def follows_run_length(self) -> bool:
        """Whether the schedule depends on the run's number of meta-steps."""
        return self.build(1) != self.build(2)


@typing.no_type_check
@dataclasses.dataclass(frozen=True)
class MetaOptimizerSpec(_Spec):
    """The meta-optimizer: Adam at `lr` (3e-3) behind an element-wise clip of the
    meta-gradient at `clip` (1.0; null for none)."""

    lr: float = 3e-3
    clip: float | None = 1.0

    def __post_init__(self):
        self._set("lr", positive("lr", self.lr))
        self._set("clip", positive("clip", self.clip, optional=True))

    def build(self) -> optax.GradientTransformation:
        """`optax.adam(lr)`, chained behind `optax.clip(clip)` when set."""
        meta_optimizer = optax.adam(self.lr)
        if self.clip is None:
            return meta_optimizer
        return optax.chain(optax.clip(self.clip), meta_optimizer)


_FRESH, _LIFETIME = META_LOSSES["fresh_rollout"], META_LOSSES["lifetime_return"]


@typing.no_type_check
@dataclasses.dataclass(frozen=True)
class MetaLossSpec(_Spec):
    """What meta-training minimises: `name` (a name of [`l2orl.META_LOSSES`][], or null for
    the algorithm's own: `"agent"` for truncated training, `"lifetime_return"` for lifetime
    training) and the options it takes: `normalize_advantages` (`agent` and
    `fresh_rollout`; false), `n_envs` (`fresh_rollout`; 64), `final_fraction`
    (`lifetime_return`; 0.1). An option of another meta-loss must keep its default."""

    name: str | None = None
    normalize_advantages: bool = False
    n_envs: int = part_default(_FRESH, "n_envs")
    final_fraction: float = part_default(_LIFETIME, "final_fraction")

    OPTIONS: ClassVar[tuple[str, ...]] = ("normalize_advantages", "n_envs", "final_fraction")

    def __post_init__(self):
        if self.name is not None:
            one_of("name", self.name, META_LOSSES, "meta-loss")
        boolean("normalize_advantages", self.normalize_advantages)
        positive_int("n_envs", self.n_envs)
        self._set("final_fraction", fraction("final_fraction", self.final_fraction))
        if self.name is not None:
            self.build(self.name)

    @classmethod
    def keys_for(cls, name: Any) -> tuple[str, ...]:
        takes = _fields(META_LOSSES[name]) if name in META_LOSSES else cls.OPTIONS
        return ("name", *(o for o in cls.OPTIONS if o in takes))

    def build(self, default: str) -> Any:
        """The meta-loss (`default` where `name` is null)."""
        name = self.name or default
        check_options(self, META_LOSSES, name, self.OPTIONS)
        return META_LOSSES[name](**{o: getattr(self, o) for o in self.keys_for(name)[1:]})


@typing.no_type_check
@dataclasses.dataclass(frozen=True)
class RunSpec(_Spec):
    """How the run goes: `meta_steps` (78), `seed` (0: the optimizer's initial
    meta-parameters and meta-training's key), `out` (the run's folder, `"runs/meta-train"`),
    `keep_checkpoints` (how many of the newest checkpoints to keep, 0 for all; 2) and
    `low_memory` (compile with XLA CPU's older fusion emitters: less compiler memory, a
    slower meta-step; false)."""

    meta_steps: int = 78
    seed: int = 0
    out: str = "runs/meta-train"
    keep_checkpoints: int = 2
    low_memory: bool = False

    def __post_init__(self):
        positive_int("meta_steps", self.meta_steps)
        integer("seed", self.seed)
        text("out", self.out)
        non_negative_int("keep_checkpoints", self.keep_checkpoints)
        boolean("low_memory", self.low_memory)

    def compiler_options(self) -> dict[str, Any] | None:
        """The XLA options the run compiles with."""
        return dict(LOW_MEMORY_COMPILE) if self.low_memory else None


@typing.no_type_check
@dataclasses.dataclass(frozen=True)
class EvaluationSpec(_Spec):
    """The comparison with Adam and RMSProp after meta-training (on the first task's env):
    `seeds` (3) and `updates` per seed (390)."""

    seeds: int = 3
    updates: int = 390

    def __post_init__(self):
        positive_int("seeds", self.seeds)
        positive_int("updates", self.updates)
