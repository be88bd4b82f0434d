import dataclasses
import json
import os
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import optax

from .._learner import AbstractLearner
from .._lopt import PRESETS, AbstractLearnedOptimizer
from .._utils import check_fraction, check_non_negative_int, check_positive, check_positive_int
from ._coordinates import is_coordinatewise
from ._estimators import ESTIMATORS, AbstractEstimator
from ._losses import META_LOSSES, AbstractMetaLoss
from ._pipeline import Pipeline
from ._schedules import SCHEDULES, AbstractTruncationSchedule
from ._task import MetaTask
from ._trainer import MetaState, MetaTrainer

_AUTO_COORDINATE_FRACTION = 0.0625
"""The fraction of coordinates `coordinate_fraction="auto"` back-propagates through."""

_LOW_MEMORY_COMPILE = {"xla_cpu_use_fusion_emitters": False}
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
"""The meta-training agents' learners by the name a `MetaTrainConfig` gives them."""


def task_name(env: str, learner: str) -> str:
    """A task's name: the env's, with `-<learner>` unless it is the default learner."""
    return env if learner == "default" else f"{env}-{learner}"


def _names(kind: str, value: Any, known) -> None:
    if not isinstance(value, str) or value not in known:
        raise ValueError(f"unknown {kind} {value!r}; expected one of {sorted(known)}")


# The config checks every value itself, with messages that name the field, whatever the
# caller passes (JSON gives lists and ints); no runtime type checker steps in first.
@typing.no_type_check
@dataclasses.dataclass(frozen=True)
class MetaTrainConfig:
    """A meta-training recipe: which optimizer, on which tasks, estimated how, for how long,
    and how the result is evaluated. Frozen and checked when made; read from and written to
    JSON (the `l2orl meta-train --config` format) with `from_json` / `to_json`.

    The defaults are the reference's Catch setting: Optim4RL on Catch, 64 single-env A2C
    agents in a staggered pipeline (reset interval 32), `K = 4` inner updates per meta-step,
    truncated BPTT of the agents' own loss, meta-Adam 3e-3 behind an element-wise clip of 1,
    78 meta-steps; then a 3-seed, 390-update comparison against Adam and RMSProp.

    **Fields:** `env` (one task per env name of [`l2orl.rl.make`][]), `optimizer` (a preset
    name of [`l2orl.PRESETS`][]), `step_size` (its α), `agent_clip` (element-wise clip of the
    agents' gradients, or None), `reward_scale` / `update_scale` (one per env, or None),
    `agents`, `unroll` (`K`, the most inner updates per meta-step), `min_unroll` (the least, for
    the `log_uniform` and `curriculum` schedules), `reset_interval`, `pipeline` (a
    [`l2orl.Pipeline`][] kind), `estimator` (a name of [`l2orl.ESTIMATORS`][]),
    `agents_per_chunk` and `coordinate_fraction` (options of `tbptt`, see
    [`l2orl.TruncatedBPTT`][]; `coordinate_fraction` is a fraction, null for autodiff through
    the unroll, or `"auto"`, the default: a sampled 1/16 of the coordinates where the
    optimizer allows it and `physics_gradient` is off, else autodiff), `physics_gradient`
    (brax envs only: let the meta-gradient flow through the simulator, as the reference's
    PPO meta-gradients do; default false, it stops there), `meta_loss` (a name of
    [`l2orl.META_LOSSES`][]), `normalize_advantages` (the `agent` and `fresh_rollout`
    meta-losses normalise the agents' advantages over their batch; default false), `schedule`
    (a name of [`l2orl.SCHEDULES`][]), `low_memory` (compile with XLA CPU's older fusion
    emitters: less compiler memory, a slower meta-step), `meta_lr`,
    `meta_clip` (element-wise clip of the meta-gradient, or None), `task_normalize`,
    `meta_steps`, `seed`, `out` (the run's folder), `keep_checkpoints` (how many of the newest
    checkpoints a run keeps; 0 keeps all), `eval_seeds`, `eval_updates`.

    **Raises:** `ValueError` naming the field and the value expected.
    """

    env: tuple[str, ...] = ("Catch",)
    optimizer: str = "Optim4RL"
    step_size: float = 1e-3
    agent_clip: float | None = None
    reward_scale: tuple[float, ...] | None = None
    update_scale: tuple[float, ...] | None = None
    learner: tuple[str, ...] | None = None
    agents: int = 64
    unroll: int = 4
    min_unroll: int = 1
    reset_interval: int = 32
    pipeline: str = "staggered"
    estimator: str = "tbptt"
    agents_per_chunk: int | None = None
    coordinate_fraction: float | str | None = "auto"
    physics_gradient: bool = False
    meta_loss: str = "agent"
    normalize_advantages: bool = False
    schedule: str = "constant"
    low_memory: bool = False
    meta_lr: float = 3e-3
    meta_clip: float | None = 1.0
    task_normalize: float | None = None
    meta_steps: int = 78
    seed: int = 0
    out: str = "runs/meta-train"
    keep_checkpoints: int = 2
    eval_seeds: int = 3
    eval_updates: int = 390

    def __post_init__(self):
        import l2orl.rl as rl  # the env registry (gymnax loads with it)

        for name in ("env", "reward_scale", "update_scale", "learner"):  # JSON gives lists
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        if isinstance(self.env, str):
            object.__setattr__(self, "env", (self.env,))
        if not (isinstance(self.env, tuple) and self.env):
            raise ValueError(f"env must be a non-empty list of env names, got {self.env!r}")
        for env in self.env:
            rl.env_family(env)  # raises, listing the available names
        for name in ("agents", "unroll", "min_unroll", "reset_interval", "meta_steps"):
            check_positive_int(name, getattr(self, name))
        check_positive_int("eval_seeds", self.eval_seeds)
        check_positive_int("eval_updates", self.eval_updates)
        check_non_negative_int("keep_checkpoints", self.keep_checkpoints)
        check_positive_int("agents_per_chunk", self.agents_per_chunk, optional=True)
        if self.coordinate_fraction not in (None, "auto"):
            try:
                check_fraction("coordinate_fraction", self.coordinate_fraction)
            except ValueError:
                raise ValueError(
                    f"coordinate_fraction must be 'auto', null or in (0, 1], got "
                    f"{self.coordinate_fraction!r}"
                ) from None
            object.__setattr__(self, "coordinate_fraction", float(self.coordinate_fraction))
        for name in ("step_size", "meta_lr"):
            check_positive(name, getattr(self, name))
        for name in ("agent_clip", "meta_clip", "task_normalize"):
            check_positive(name, getattr(self, name), optional=True)
        for name in ("step_size", "meta_lr", "agent_clip", "meta_clip", "task_normalize"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, float(getattr(self, name)))
        if not (isinstance(self.seed, int) and not isinstance(self.seed, bool)):
            raise ValueError(f"seed must be an int, got {self.seed!r}")
        for name in ("low_memory", "physics_gradient", "normalize_advantages"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.out, str):
            raise ValueError(f"out must be a path, got {self.out!r}")
        _names("optimizer", self.optimizer, PRESETS)
        _names("estimator", self.estimator, ESTIMATORS)
        _names("meta_loss", self.meta_loss, META_LOSSES)
        _names("schedule", self.schedule, SCHEDULES)
        loss_fields = {f.name for f in dataclasses.fields(META_LOSSES[self.meta_loss])}
        if self.normalize_advantages and "normalize_advantages" not in loss_fields:
            raise ValueError(
                f"normalize_advantages is an option of the 'agent' and 'fresh_rollout' "
                f"meta-losses, not {self.meta_loss!r}"
            )
        if self.min_unroll > self.unroll:
            raise ValueError(f"min_unroll {self.min_unroll} exceeds unroll {self.unroll}")
        if self.learner is not None:
            if not isinstance(self.learner, tuple) or len(self.learner) != len(self.env):
                raise ValueError(
                    f"learner must be null or a list of {len(self.env)} names (one per env "
                    f"{list(self.env)}), got {self.learner!r}"
                )
            for name in self.learner:
                _names("learner", name, LEARNERS)
        names = [task_name(e, k) for e, k in zip(self.env, self.learners(), strict=True)]
        if len(set(names)) != len(names):
            raise ValueError(f"each (env, learner) must appear once, got tasks {names}")
        for name in ("reward_scale", "update_scale"):
            scales = getattr(self, name)
            if scales is None:
                continue
            if not isinstance(scales, tuple) or len(scales) != len(self.env):
                raise ValueError(
                    f"{name} must be null or a list of {len(self.env)} positive numbers "
                    f"(one per env {list(self.env)}), got {scales!r}"
                )
            for scale in scales:
                check_positive(name, scale)
            object.__setattr__(self, name, tuple(map(float, scales)))
        if self.reward_scale is not None:
            for env in self.env:
                if "reward_scale" not in rl.env_family(env).options:
                    raise ValueError(
                        f"reward_scale is only for the gridworlds; {env!r} takes none"
                    )
        if self.physics_gradient:
            for env in self.env:
                if "physics_gradient" not in rl.env_family(env).options:
                    raise ValueError(
                        f"physics_gradient is only for brax envs ('brax:<name>'); {env!r} has "
                        "no simulator to differentiate"
                    )
            if isinstance(self.coordinate_fraction, float):
                raise ValueError(
                    f"coordinate_fraction={self.coordinate_fraction} needs a meta-loss that "
                    "depends on the meta-parameters only through the agents' parameters; with "
                    "physics_gradient the environments' states carry derivatives too: use "
                    "coordinate_fraction 'auto' or null (autodiff)"
                )
        if self.agents_per_chunk is not None and self.agents % self.agents_per_chunk:
            raise ValueError(
                f"agents_per_chunk must divide agents ({self.agents}), got {self.agents_per_chunk}"
            )
        # The parts check the rest themselves: a pipeline kind, an estimator's options, the
        # estimator and meta-loss together.
        Pipeline(self.agents, self.reset_interval, self.pipeline)
        optimizer = self.make_optimizer()
        estimator, meta_loss = self.make_estimator(optimizer), self.make_meta_loss()
        estimator.check_optimizer(optimizer)
        if estimator.needs_differentiable_loss and not meta_loss.differentiable:
            raise ValueError(
                f"estimator {self.estimator!r} needs a differentiable meta-loss; "
                f"meta_loss {self.meta_loss!r} is not"
            )

    @classmethod
    def from_json(cls, source: str | os.PathLike | dict[str, Any]) -> "MetaTrainConfig":
        """A config from a JSON file's path or a parsed dict; missing keys take the defaults.

        **Raises:** `ValueError` naming unknown keys, a malformed file, or a bad value."""
        if isinstance(source, dict):
            data = source
        else:
            path = Path(source)
            if not path.is_file():
                raise ValueError(f"no config file at {path}")
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError as error:
                raise ValueError(f"{path} is not valid JSON: {error}") from None
            if not isinstance(data, dict):
                raise ValueError(f"{path} must hold a JSON object of settings")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown keys {unknown}; valid keys: {sorted(known)}")
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        """The config as a JSON-ready dict (tuples as lists)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    def replace(self, **changes: Any) -> "MetaTrainConfig":
        """A copy with `changes`, checked again."""
        return dataclasses.replace(self, **changes)

    def run_settings(self) -> dict[str, Any]:
        """What a run records and a resumed run must match: everything but where it is
        written, what it keeps, how it is evaluated and (unless the schedule follows it) how
        long it runs, so that a finished run can be continued to more meta-steps; and
        `normalize_advantages`, which the meta-loss's own description records."""
        ignored = {"out", "keep_checkpoints", "eval_seeds", "eval_updates", "normalize_advantages"}
        if self.schedule != "curriculum":
            ignored.add("meta_steps")
        return {k: v for k, v in self.to_json().items() if k not in ignored}

    def make_optimizer(self) -> AbstractLearnedOptimizer:
        """The preset at `step_size`, initialised from `seed`."""
        return PRESETS[self.optimizer](step_size=self.step_size, key=jax.random.key(self.seed))

    def make_tasks(self) -> tuple[MetaTask, ...]:
        """One task per env, each with the env's default learner at one env per agent."""
        import l2orl.rl as rl

        n = len(self.env)
        reward_scales = self.reward_scale or (None,) * n
        update_scales = self.update_scale or (1.0,) * n

        def make(env, reward_scale):
            options = {} if reward_scale is None else {"reward_scale": reward_scale}
            if self.physics_gradient:
                options["physics_gradient"] = True
            return rl.make(env, **options)

        return tuple(
            MetaTask(
                task_name(env, learner),
                LEARNERS[learner](env),
                make(env, reward_scale),
                Pipeline(self.agents, self.reset_interval, self.pipeline),
                grad_clip=self.agent_clip,
                update_scale=float(update_scale),
            )
            for env, learner, reward_scale, update_scale in zip(
                self.env, self.learners(), reward_scales, update_scales, strict=True
            )
        )

    def learners(self) -> tuple[str, ...]:
        """Each env's learner name (`"default"` where `learner` is None)."""
        return self.learner or ("default",) * len(self.env)

    def make_estimator(
        self, optimizer: AbstractLearnedOptimizer | None = None
    ) -> AbstractEstimator:
        """The estimator, with `agents_per_chunk` and `coordinate_fraction` when set (an error
        if it takes none). `coordinate_fraction="auto"` is 1/16 for `tbptt` when `optimizer`
        (default `make_optimizer()`) allows the coordinate route and `physics_gradient` is
        off, else autodiff."""
        cls = ESTIMATORS[self.estimator]
        fields = {f.name for f in dataclasses.fields(cls)}
        fraction = self.coordinate_fraction
        if fraction == "auto":
            optimizer = self.make_optimizer() if optimizer is None else optimizer
            usable = (
                "coordinate_fraction" in fields
                and is_coordinatewise(optimizer)
                and not self.physics_gradient
            )
            fraction = _AUTO_COORDINATE_FRACTION if usable else None
        options = {"agents_per_chunk": self.agents_per_chunk, "coordinate_fraction": fraction}
        options = {k: v for k, v in options.items() if v is not None}
        for name in options:
            if name not in fields:
                raise ValueError(
                    f"{name} is an option of another estimator, not {self.estimator!r}"
                )
        return cls(**options)

    def make_meta_loss(self) -> AbstractMetaLoss:
        if not self.normalize_advantages:
            return META_LOSSES[self.meta_loss]()
        return META_LOSSES[self.meta_loss](normalize_advantages=True)

    def make_schedule(self) -> AbstractTruncationSchedule:
        return SCHEDULES[self.schedule].from_range(self.min_unroll, self.unroll, self.meta_steps)

    def make_meta_optimizer(self) -> optax.GradientTransformation:
        """Adam at `meta_lr`, behind an element-wise clip at `meta_clip` when set."""
        meta_optimizer = optax.adam(self.meta_lr)
        if self.meta_clip is None:
            return meta_optimizer
        return optax.chain(optax.clip(self.meta_clip), meta_optimizer)

    def compiler_options(self) -> dict[str, Any] | None:
        """The XLA options the run compiles with."""
        return _LOW_MEMORY_COMPILE if self.low_memory else None

    def trainer(self, optimizer: AbstractLearnedOptimizer | None = None) -> MetaTrainer:
        """The `MetaTrainer` this config describes, for `optimizer` if given (e.g. a
        variant's), else `make_optimizer()`."""
        optimizer = self.make_optimizer() if optimizer is None else optimizer
        return MetaTrainer(
            optimizer,
            self.make_tasks(),
            estimator=self.make_estimator(optimizer),
            meta_loss=self.make_meta_loss(),
            schedule=self.make_schedule(),
            meta_optimizer=self.make_meta_optimizer(),
            task_normalize=self.task_normalize,
        )

    def run(
        self, optimizer: AbstractLearnedOptimizer | None = None, progress: bool = True
    ) -> tuple[MetaTrainer, MetaState]:
        """Meta-train into `out` (resuming a run there); **returns** the trainer and its final
        state."""
        trainer = self.trainer(optimizer)
        state = trainer.run(
            self.meta_steps,
            self.out,
            key=self.seed,
            keep_checkpoints=self.keep_checkpoints,
            progress=progress,
            settings=self.run_settings(),
            compiler_options=self.compiler_options(),
        )
        return trainer, state
