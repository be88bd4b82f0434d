"""Meta-training with an evosax evolution strategy: ask for a population of meta-parameter
vectors, score each by whole agent lifetimes, tell the strategy their fitness."""

import inspect
import os
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Int, PyTree

from .._checkpoint import describe
from .._custom_types import Metrics, PRNGKey
from .._lopt import AbstractLearnedOptimizer
from .._utils import check_positive, check_positive_int
from ._estimators import EstimateMetrics, lifetime_losses
from ._losses import AbstractMetaLoss, LifetimeReturn
from ._run import run
from ._shaping import check_fitness_shaping, finite_mean, shape_fitness
from ._task import MetaTask


class EvosaxState(eqx.Module):
    """Everything an [`l2orl.EvosaxES`][] run carries between generations; a checkpoint saves
    all of it.

    **Attributes:** `strategy_state` (the evosax strategy's state: its search distribution,
    whose mean is the learned optimizer, and its best member so far), `meta_step` (the
    generation), `skipped` (generations whose update was not applied: every member's loss,
    or the new mean, non-finite) and `key`.
    """

    strategy_state: PyTree
    meta_step: Int[Array, ""]
    skipped: Int[Array, ""]
    key: PRNGKey


def _strong(tree: PyTree) -> PyTree:
    """`tree` with every leaf a strongly typed array of its dtype (evosax's states hold
    Python scalars, which would be weakly typed and make the compiled step retrace)."""
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.result_type(x)), tree)


class EvosaxES(eqx.Module):
    """Meta-trains a learned optimizer with any distribution-based
    [evosax](https://github.com/RobertTLange/evosax) strategy over whole agent lifetimes.

    Each generation (one meta-step) asks the strategy for `population_size` meta-parameter
    vectors (the optimizer's floating-point arrays, flattened), trains `n_agents` fresh agents
    per task with each of them for `lifetime` inner updates (the evaluation of
    [`l2orl.FullES`][]; every member gets the same agents and keys: common random numbers),
    and tells the strategy each member's fitness: its meta-loss averaged over the agents
    (use [`l2orl.LifetimeReturn`][]: the final return), shaped by `fitness_shaping` per task
    and averaged over tasks. The learned optimizer is the strategy's mean.

    `fitness_shaping` (one of [`l2orl.FITNESS_SHAPINGS`][]) makes a non-finite loss the worst
    (see [`l2orl.shape_fitness`][]). Strategies whose update weights members by their rank
    (evosax's `weights_fitness_shaping_fn`: CMA_ES, SNES, xNES, Sep_CMA_ES, ...) keep their
    weights, computed from the shaped fitness, so there the shaping only decides where
    diverged members rank; every other strategy (Open_ES, PGPE, ARS, ...) is told the shaped
    fitness in place of its own shaping, unless `strategy_options` names a
    `fitness_shaping_fn`. A generation whose members all diverged, or whose new mean is
    non-finite, is not applied (the strategy state stays as it was) and `skipped` counts it.
    The logged `meta_loss` is the mean of the finite members' losses, `diverged` counts
    the others.

    CMA-ES keeps a full covariance matrix (`d²` floats, an eigendecomposition per
    generation): fine up to a few thousand meta-parameters, slow beyond; SNES and OpenES are
    linear in `d`.

    **Arguments:** `optimizer` (the initial learned optimizer: the strategy's initial mean),
    `tasks` (each [`l2orl.MetaTask`][]'s `pipeline.n_agents` is the number of fresh agents
    per member; the pipeline's resets are unused), `lifetime` (inner updates per agent),
    `strategy` (a name of evosax's `distribution_based_algorithms`, e.g. `"Open_ES"`,
    `"SNES"`, `"CMA_ES"`), `population_size` (16), `std` (0.01: the search distribution's
    initial standard deviation, set through the strategy's `std_init` parameter or its
    `std_schedule` option; None keeps the strategy's default), `strategy_options` (keyword
    arguments of the strategy's constructor, e.g. `{"optimizer": optax.adam(1e-2)}` for
    Open_ES), `strategy_params` (overrides of its `default_params` fields),
    `fitness_shaping` (`"centered_ranks"`), `meta_loss` (`LifetimeReturn()`).

    **Raises:** `ValueError` for an unknown strategy, a population size or option the
    strategy refuses, or a `std` the strategy has no place for.
    """

    optimizer: AbstractLearnedOptimizer
    tasks: tuple[MetaTask, ...]
    lifetime: int = eqx.field(static=True)
    strategy: str = eqx.field(static=True, default="Open_ES")
    population_size: int = eqx.field(static=True, default=16)
    std: float | None = eqx.field(static=True, default=0.01)
    strategy_options: dict[str, Any] = eqx.field(default_factory=dict)
    strategy_params: dict[str, Any] = eqx.field(default_factory=dict)
    fitness_shaping: str = eqx.field(static=True, default="centered_ranks")
    meta_loss: AbstractMetaLoss = eqx.field(default_factory=LifetimeReturn)

    def __check_init__(self):
        from evosax.algorithms import distribution_based_algorithms

        if not self.tasks:
            raise ValueError("EvosaxES needs at least one task")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names}")
        check_positive_int("lifetime", self.lifetime)
        check_positive_int("population_size", self.population_size)
        check_positive("std", self.std, optional=True)
        check_fitness_shaping(self.fitness_shaping)
        if self.strategy not in distribution_based_algorithms:
            raise ValueError(
                f"unknown evosax strategy {self.strategy!r}; expected a distribution-based "
                f"one: {sorted(distribution_based_algorithms)}"
            )
        self._strategy_and_params()  # the strategy checks its own arguments

    def _meta_params(self) -> PyTree:
        return eqx.filter(self.optimizer, eqx.is_inexact_array)

    def _strategy_and_params(self) -> tuple[Any, Any]:
        """The evosax strategy object (over the optimizer's meta-parameters) and its params."""
        from evosax.algorithms import distribution_based_algorithms
        from evosax.core.fitness_shaping import (
            identity_fitness_shaping_fn,
            weights_fitness_shaping_fn,
        )

        cls = distribution_based_algorithms[self.strategy]
        signature = inspect.signature(cls).parameters
        options = dict(self.strategy_options)
        if signature["fitness_shaping_fn"].default is not weights_fitness_shaping_fn:
            options.setdefault("fitness_shaping_fn", identity_fitness_shaping_fn)
        std_by_schedule = self.std is not None and "std_schedule" in signature
        try:
            strategy = cls(
                population_size=self.population_size, solution=self._meta_params(), **options
            )
            params = strategy.default_params
            if self.std is not None and hasattr(params, "std_init"):
                params = params.replace(std_init=jnp.asarray(self.std, jnp.float32))
            elif std_by_schedule:
                strategy = cls(
                    population_size=self.population_size,
                    solution=self._meta_params(),
                    **{"std_schedule": optax.constant_schedule(self.std), **options},
                )
            elif self.std is not None:
                raise ValueError(
                    f"evosax's {self.strategy} has no initial standard deviation to set; "
                    "pass std=None"
                )
            params = params.replace(**self.strategy_params)
        except (AssertionError, TypeError) as error:
            raise ValueError(
                f"evosax's {self.strategy} refused population_size={self.population_size}, "
                f"strategy_options={sorted(self.strategy_options)} or strategy_params="
                f"{sorted(self.strategy_params)}: {error or type(error).__name__}"
            ) from None
        return strategy, params

    def init(self, key: PRNGKey) -> EvosaxState:
        """The strategy's initial state, centred on the optimizer's meta-parameters."""
        strategy, params = self._strategy_and_params()
        k_init, key = jax.random.split(key)
        strategy_state = strategy.init(k_init, self._meta_params(), params)
        zero = jnp.zeros((), jnp.int32)
        return EvosaxState(_strong(strategy_state), zero, zero, key)

    def place(self, state: EvosaxState) -> EvosaxState:
        """`state` as it is: the population's agents live only within a generation."""
        return state

    def state_shapes(self, key: PRNGKey) -> EvosaxState:
        """The shapes and dtypes of `init(key)`'s state, without creating it."""
        return jax.eval_shape(self.init, key)

    def optimizer_at(self, state: EvosaxState) -> AbstractLearnedOptimizer:
        """The learned optimizer at the strategy's mean."""
        strategy, _ = self._strategy_and_params()
        static = eqx.filter(self.optimizer, eqx.is_inexact_array, inverse=True)
        return eqx.combine(strategy.get_mean(state.strategy_state), static)

    def _task_losses(self, task: MetaTask, population: PyTree, key: PRNGKey):
        """Every member's mean loss over `n_agents` fresh agents (the same for all members),
        and the lifetimes' metrics."""
        k_init, k_run = jax.random.split(key)
        n, p = task.pipeline.n_agents, self.population_size
        fresh = task.fresh_agents(self.optimizer, jax.random.split(k_init, n))
        keys = jax.random.split(k_run, n)

        def tile(x):  # member-major: member i's agents are rows i·n … i·n + n − 1
            return jnp.broadcast_to(x, (p, *x.shape)).reshape(p * n, *x.shape[1:])

        members = jax.tree.map(lambda x: jnp.repeat(x, n, axis=0), population)
        static = eqx.filter(self.optimizer, eqx.is_inexact_array, inverse=True)
        losses, summaries = lifetime_losses(
            members,
            static,
            task,
            self.meta_loss,
            jax.tree.map(tile, fresh),
            tile(keys),
            self.lifetime,
        )
        metrics = EstimateMetrics.of(
            finite_mean(losses), summaries, jnp.zeros(p * n, jnp.int32), self.lifetime
        )
        return jnp.mean(losses.reshape(p, n), axis=1), metrics

    def step(self, state: EvosaxState) -> tuple[EvosaxState, Metrics]:
        """One generation: ask, evaluate, tell (pure: jit it, as `run` does)."""
        strategy, params = self._strategy_and_params()
        key, k_ask, k_tell, *task_keys = jax.random.split(state.key, 3 + len(self.tasks))
        population, asked = strategy.ask(k_ask, state.strategy_state, params)
        fitness, raw, metrics = 0.0, 0.0, {}
        env_steps = jnp.zeros((), jnp.float32)
        for task, k_task in zip(self.tasks, task_keys, strict=True):
            losses, m = self._task_losses(task, population, k_task)
            fitness = fitness + shape_fitness(losses, self.fitness_shaping) / len(self.tasks)
            raw = raw + losses / len(self.tasks)
            env_steps += m.env_steps(task, self.meta_loss)
            metrics.update({f"{task.name}/{k}": v for k, v in m.log().items()})
        told, _ = strategy.tell(k_tell, population, fitness, asked, params)
        told = _strong(told)
        meta_loss = finite_mean(raw)
        applied = jnp.isfinite(meta_loss) & jnp.all(jnp.isfinite(told.mean))
        strategy_state = jax.tree.map(
            lambda new, old: jnp.where(applied, new, old), told, state.strategy_state
        )
        skipped = state.skipped + (~applied).astype(jnp.int32)
        metrics.update(
            meta_loss=meta_loss,
            best_loss=jnp.min(jnp.where(jnp.isfinite(raw), raw, jnp.inf)),
            diverged=jnp.sum(~jnp.isfinite(raw)),
            env_steps=env_steps,
            skipped=skipped,
        )
        new_state = EvosaxState(strategy_state, state.meta_step + 1, skipped, key)
        return new_state, {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}

    def config(self) -> dict:
        """The run's configuration as JSON: the optimizer's module tree and every setting
        (options that are not JSON values, such as an optax transform, by their type)."""

        def value(x):
            if x is None or isinstance(x, bool | int | float | str):
                return x
            if isinstance(x, jax.Array | np.ndarray):
                return np.asarray(x).tolist()
            return type(x).__name__

        return {
            "optimizer": describe(self.optimizer),
            "tasks": [t.config() for t in self.tasks],
            "strategy": self.strategy,
            "population_size": self.population_size,
            "lifetime": self.lifetime,
            "std": self.std,
            "strategy_options": {k: value(v) for k, v in self.strategy_options.items()},
            "strategy_params": {k: value(v) for k, v in self.strategy_params.items()},
            "fitness_shaping": self.fitness_shaping,
            "meta_loss": describe(self.meta_loss),
        }

    def run(
        self,
        n_meta_steps: int,
        out_dir: str | os.PathLike,
        key: PRNGKey | int = 0,
        checkpoint_every: int = 10,
        keep_checkpoints: int = 2,
        resume: bool = True,
        progress: bool = True,
        settings: dict[str, Any] | None = None,
        compiler_options: dict[str, Any] | None = None,
    ) -> EvosaxState:
        """Run `n_meta_steps` generations into `out_dir`, with the files, resumption,
        locking and signal handling of [`l2orl.MetaTrainer.run`][] (`optimizer.l2o` is the
        strategy's final mean); a resumed run ends with the state an uninterrupted one
        reaches."""
        return run(
            self,
            n_meta_steps,
            Path(out_dir),
            key=key,
            checkpoint_every=checkpoint_every,
            keep_checkpoints=keep_checkpoints,
            resume=resume,
            progress=progress,
            settings=settings,
            compiler_options=compiler_options,
        )
