"""Lifetime training: whole inner lifetimes scored, the meta-parameters searched by a
strategy."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PyTree

from .._checkpoint import describe
from .._custom_types import Metrics, PRNGKey
from .._lopt import AbstractLearnedOptimizer
from .._utils import check_positive_int
from ._algorithm import AbstractMetaAlgorithm, AbstractMetaState
from ._estimators import EstimateMetrics
from ._inner import InnerLoop
from ._losses import AbstractMetaLoss, LifetimeReturn
from ._search import AbstractSearchStrategy, AntitheticES
from ._shaping import check_fitness_shaping, finite_mean, shape_fitness
from ._task import MetaTask, check_tasks


class LifetimeState(AbstractMetaState):
    """What [`l2orl.LifetimeTraining`][] carries between generations.

    **Attributes:** `search` (the strategy's state: its search distribution, whose mean is
    the learned optimizer), `meta_step` (the generation), `skipped` (generations whose update
    was not applied: every member's loss, or the new mean, non-finite) and `key`.
    """

    search: PyTree
    meta_step: Int[Array, ""]
    skipped: Int[Array, ""]
    key: PRNGKey


class LifetimeTraining(AbstractMetaAlgorithm):
    """Meta-trains a learned optimizer on whole agent lifetimes (OPEN's objective).

    Each generation (one meta-step) asks `strategy` for a population of meta-parameters,
    trains `agents` fresh agents per task with each member for `lifetime` inner updates
    (every member gets the same agents and keys: common random numbers), scores each agent by
    `meta_loss` (use [`l2orl.LifetimeReturn`][]: the final return), shapes the members' mean
    losses by `fitness_shaping` per task (one of [`l2orl.FITNESS_SHAPINGS`][]; a non-finite
    loss counts as the worst, see [`l2orl.shape_fitness`][]), averages over tasks and tells
    the strategy. The learned optimizer is the strategy's mean. A generation whose members
    all diverged, or whose new mean is non-finite, is not applied and `skipped` counts it;
    the logged `meta_loss` is the mean of the finite members' losses, `diverged` counts the
    others.

    **Arguments:** `optimizer` (the initial learned optimizer: the search's centre),
    `tasks`, `lifetime` (inner updates per agent), `strategy` ([`l2orl.AntitheticES`][] or
    [`l2orl.EvosaxStrategy`][]), `agents` (fresh agents per member and task, 1),
    `meta_loss` (`LifetimeReturn()`), `fitness_shaping` (`"centered_ranks"`).
    """

    optimizer: AbstractLearnedOptimizer
    tasks: tuple[MetaTask, ...]
    lifetime: int = eqx.field(static=True)
    strategy: AbstractSearchStrategy = eqx.field(default_factory=AntitheticES)
    agents: int = eqx.field(static=True, default=1)
    meta_loss: AbstractMetaLoss = eqx.field(default_factory=LifetimeReturn)
    fitness_shaping: str = eqx.field(static=True, default="centered_ranks")

    def __check_init__(self):
        check_tasks(self.tasks, type(self).__name__)
        check_positive_int("lifetime", self.lifetime)
        check_positive_int("agents", self.agents)
        check_fitness_shaping(self.fitness_shaping)
        self._search()  # the strategy checks itself against the meta-parameters

    def _meta_params(self) -> PyTree:
        return eqx.filter(self.optimizer, eqx.is_inexact_array)

    def _search(self) -> AbstractSearchStrategy:
        return self.strategy.bind(self._meta_params())

    def init(self, key: PRNGKey) -> LifetimeState:
        """The strategy's initial state, centred on the optimizer's meta-parameters."""
        k_init, key = jax.random.split(key)
        search = self._search().init(k_init, self._meta_params())
        zero = jnp.zeros((), jnp.int32)
        return LifetimeState(search, zero, zero, key)

    def place(self, state: LifetimeState) -> LifetimeState:
        """`state` as it is: the population's agents live only within a generation."""
        return state

    def state_shapes(self, key: PRNGKey) -> LifetimeState:
        return jax.eval_shape(self.init, key)

    def optimizer_at(self, state: LifetimeState) -> AbstractLearnedOptimizer:
        """The learned optimizer at the strategy's mean."""
        static = eqx.filter(self.optimizer, eqx.is_inexact_array, inverse=True)
        return eqx.combine(self._search().mean(state.search), static)

    def _task_losses(self, task: MetaTask, population: PyTree, key: PRNGKey):
        """Every member's mean loss over `agents` fresh agents (the same for all members),
        the lifetimes' metrics and their environment steps."""
        k_init, k_run = jax.random.split(key)
        n, p = self.agents, self.strategy.population_size
        fresh = task.fresh_agents(self.optimizer, jax.random.split(k_init, n))
        keys = jax.random.split(k_run, n)

        def tile(x):  # member-major: member i's agents are rows i·n … i·n + n − 1
            return jnp.broadcast_to(x, (p, *x.shape)).reshape(p * n, *x.shape[1:])

        members = jax.tree.map(lambda x: jnp.repeat(x, n, axis=0), population)
        static = eqx.filter(self.optimizer, eqx.is_inexact_array, inverse=True)
        length = jnp.asarray(self.lifetime, jnp.int32)
        loop = InnerLoop(task, self.meta_loss, length, self.lifetime, self.lifetime)

        def one(params, agent, key):
            loss, _, summary = loop.unroll(eqx.combine(params, static), agent, key)
            return loss, summary

        losses, summaries = jax.vmap(one)(members, jax.tree.map(tile, fresh), tile(keys))
        metrics = EstimateMetrics.of(
            finite_mean(losses), summaries, jnp.zeros(p * n, jnp.int32), self.lifetime
        )
        return jnp.mean(losses.reshape(p, n), axis=1), metrics, metrics.env_steps(loop)

    def step(self, state: LifetimeState) -> tuple[LifetimeState, Metrics]:
        """One generation: ask, evaluate, tell (pure: [`l2orl.meta_train`][] jits it)."""
        search = self._search()
        key, k_ask, k_tell, *task_keys = jax.random.split(state.key, 3 + len(self.tasks))
        population, asked = search.ask(k_ask, state.search)
        fitness, raw, metrics = 0.0, 0.0, {}
        env_steps = jnp.zeros((), jnp.float32)
        for task, k_task in zip(self.tasks, task_keys, strict=True):
            losses, m, steps = self._task_losses(task, population, k_task)
            fitness = fitness + shape_fitness(losses, self.fitness_shaping) / len(self.tasks)
            raw = raw + losses / len(self.tasks)
            env_steps += steps
            metrics.update({f"{task.name}/{k}": v for k, v in m.log().items()})
        told = search.tell(k_tell, population, asked, fitness)
        new_state, meta_loss = self._applied(state, told, raw, key)
        metrics.update(
            meta_loss=meta_loss,
            best_loss=jnp.min(jnp.where(jnp.isfinite(raw), raw, jnp.inf)),
            diverged=jnp.sum(~jnp.isfinite(raw)),
            env_steps=env_steps,
            skipped=new_state.skipped,
        )
        return new_state, {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}

    def _applied(
        self, state: LifetimeState, told: PyTree, raw: Float[Array, " p"], key: PRNGKey
    ) -> tuple[LifetimeState, Float[Array, ""]]:
        """The next state: `told` unless every loss in `raw` or the new mean is non-finite;
        and the generation's meta-loss."""
        meta_loss = finite_mean(raw)
        mean = self._search().mean(told)
        applied = jnp.isfinite(meta_loss) & jnp.all(
            jnp.asarray([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(mean)])
        )
        search = jax.tree.map(lambda new, old: jnp.where(applied, new, old), told, state.search)
        skipped = state.skipped + (~applied).astype(jnp.int32)
        return LifetimeState(search, state.meta_step + 1, skipped, key), meta_loss

    def config(self) -> dict:
        """The run's configuration as JSON: the optimizer's module tree and every setting
        (options that are not JSON values, such as an optax transform, by their type)."""
        return {
            "algorithm": type(self).__name__,
            "optimizer": describe(self.optimizer),
            "tasks": [t.config() for t in self.tasks],
            "lifetime": self.lifetime,
            "agents": self.agents,
            "strategy": self.strategy.config(),
            "fitness_shaping": self.fitness_shaping,
            "meta_loss": describe(self.meta_loss),
        }
