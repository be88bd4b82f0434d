"""Truncated training: a pipeline of persistent agents per task, `K` inner updates per
meta-step, a meta-gradient by an estimator."""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Int, PyTree

from .._checkpoint import describe
from .._custom_types import Metrics, PRNGKey
from .._lopt import AbstractLearnedOptimizer
from .._utils import check_positive, tree_select
from ._algorithm import AbstractMetaAlgorithm, AbstractMetaState
from ._estimators import AbstractEstimator, TruncatedBPTT
from ._inner import InnerLoop
from ._losses import AbstractMetaLoss, AgentLoss
from ._pipeline import Pipeline
from ._schedules import AbstractTruncationSchedule, ConstantTruncation
from ._sharding import place, state_shardings, with_shapes
from ._task import AgentsState, MetaTask, check_tasks


class TruncatedState(AbstractMetaState):
    """What [`l2orl.TruncatedTraining`][] carries between meta-steps.

    **Attributes:** `meta_params` (the optimizer's arrays), `meta_opt_state`, `agents`,
    `offsets` (each agent's pipeline reset offset) and `estimator_states` (one of each per
    task), `meta_step`, `skipped` (meta-steps whose non-finite meta-gradient was not applied)
    and `key`.
    """

    meta_params: PyTree
    meta_opt_state: PyTree
    agents: tuple[AgentsState, ...]
    offsets: tuple[Int[Array, " _n_agents"], ...]
    estimator_states: tuple
    meta_step: Int[Array, ""]
    skipped: Int[Array, ""]
    key: PRNGKey


class TruncatedTraining(AbstractMetaAlgorithm):
    """Meta-trains a learned optimizer on truncated unrolls of persistent agents.

    One meta-step: for each task, reset the agents `pipeline` says, estimate the task's
    meta-gradient over its agents' `K`-update unrolls (`K` from `schedule`), optionally
    normalise it to norm `task_normalize`, average over tasks, and apply it with
    `meta_optimizer` unless it is non-finite: then the meta-parameters, meta-optimizer state,
    agents and estimator state stay as they were (only `meta_step` and the key advance, so
    the step's resets are dropped too) and `skipped` counts it. With several devices that
    divide `pipeline.n_agents`, each task's agents are sharded over them (`jax.sharding`): all
    processes' devices under `jax.distributed`, with one meta-gradient and the same
    meta-parameters on every process.

    **Arguments:** `optimizer` (the initial learned optimizer), `tasks`, `pipeline` (the
    tasks' agents and when they reset: one [`l2orl.Pipeline`][] for every task, or a tuple of
    one per task), `estimator` (`TruncatedBPTT()`), `meta_loss`
    (`AgentLoss()`), `schedule` (`ConstantTruncation(4)`), `meta_optimizer`
    (`optax.adam(1e-3)`; chain `optax.clip` or `optax.clip_by_global_norm` in front to clip
    meta-gradients), `task_normalize` (None).
    """

    optimizer: AbstractLearnedOptimizer
    tasks: tuple[MetaTask, ...]
    pipeline: Pipeline | tuple[Pipeline, ...]
    estimator: AbstractEstimator = eqx.field(default_factory=TruncatedBPTT)
    meta_loss: AbstractMetaLoss = eqx.field(default_factory=AgentLoss)
    schedule: AbstractTruncationSchedule = eqx.field(default_factory=lambda: ConstantTruncation(4))
    meta_optimizer: optax.GradientTransformation = eqx.field(static=True, default=optax.adam(1e-3))
    task_normalize: float | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        check_tasks(self.tasks, type(self).__name__)
        if isinstance(self.pipeline, tuple) and len(self.pipeline) != len(self.tasks):
            raise ValueError(
                f"pipeline must be one Pipeline or one per task ({len(self.tasks)}), got "
                f"{len(self.pipeline)}"
            )
        if self.estimator.needs_differentiable_loss and not self.meta_loss.differentiable:
            raise ValueError(
                f"{type(self.estimator).__name__} needs a differentiable meta-loss; "
                f"{type(self.meta_loss).__name__} is not: use an ES estimator (TruncatedES, "
                "PES), AgentLoss, or LifetimeTraining"
            )
        check_positive("task_normalize", self.task_normalize, optional=True)
        self.estimator.check_optimizer(self.optimizer)

    def pipelines(self) -> tuple[Pipeline, ...]:
        """Each task's pipeline."""
        if isinstance(self.pipeline, Pipeline):
            return (self.pipeline,) * len(self.tasks)
        return self.pipeline

    def optimizer_at(self, state: TruncatedState) -> AbstractLearnedOptimizer:
        """The learned optimizer with `state`'s meta-parameters."""
        return eqx.combine(
            state.meta_params, eqx.filter(self.optimizer, eqx.is_inexact_array, inverse=True)
        )

    def init(self, key: PRNGKey) -> TruncatedState:
        """Fresh agents for every task, the meta-optimizer's state, meta-step 0, placed on
        the devices (`place`)."""
        return self.place(self._fresh(key))

    def _fresh(self, key: PRNGKey) -> TruncatedState:
        """`init`'s state, whole on this process's default device."""
        meta_params = eqx.filter(self.optimizer, eqx.is_inexact_array)
        keys = jax.random.split(key, 3 * len(self.tasks) + 1)
        agents, offsets, estimator_states = [], [], []
        for i, (task, pipeline) in enumerate(zip(self.tasks, self.pipelines(), strict=True)):
            k_offsets, k_agents, k_est = keys[3 * i : 3 * i + 3]
            n = pipeline.n_agents
            agents.append(task.fresh_agents(self.optimizer, jax.random.split(k_agents, n)))
            offsets.append(pipeline.offsets(k_offsets))
            estimator_states.append(self.estimator.init(meta_params, agents[-1], k_est))
        zero = jnp.zeros((), jnp.int32)
        return TruncatedState(
            meta_params=meta_params,
            meta_opt_state=self.meta_optimizer.init(meta_params),
            agents=tuple(agents),
            offsets=tuple(offsets),
            estimator_states=tuple(estimator_states),
            meta_step=zero,
            skipped=zero,
            key=keys[-1],
        )

    def _n_agents(self) -> tuple[int, ...]:
        return tuple(p.n_agents for p in self.pipelines())

    def place(self, state: TruncatedState) -> TruncatedState:
        """`state` on the devices of all processes (`jax.devices()`): each task's agents and
        estimator state split over them where they divide its agents, the rest replicated
        (unchanged with one device). With several processes each passes the same whole
        `state` and keeps its own shards."""
        return place(state, self._n_agents())

    def state_shapes(self, key: PRNGKey) -> TruncatedState:
        return with_shapes(jax.eval_shape(self._fresh, key), self._n_agents())

    def inner_loop(self, i: int, length: Int[Array, ""] | int) -> InnerLoop:
        """Task `i`'s inner loop for a meta-step of `length` inner updates (what its
        estimator runs)."""
        lifetime = self.pipelines()[i].lifetime(self.schedule.max_length)
        return InnerLoop(self.tasks[i], self.meta_loss, length, self.schedule.max_length, lifetime)

    def _task_step(
        self, state: TruncatedState, i: int, optimizer, length, keys: tuple[PRNGKey, PRNGKey]
    ):
        """Task `i`'s part of a meta-step (`keys`: the resets' and the estimate's): reset,
        estimate, normalise. **Returns:** `(gradient, agents, estimator_state, metrics,
        env_steps)`."""
        task, loop = self.tasks[i], self.inner_loop(i, length)
        k_reset, k_estimate = keys
        mask = self.pipelines()[i].reset_mask(state.offsets[i], state.meta_step)
        agents = _reset(task, optimizer, state.agents[i], mask, k_reset)
        est = self.estimator.on_reset(state.estimator_states[i], agents, mask)
        grad, agents, est, m = self.estimator.estimate(
            loop=loop, optimizer=optimizer, agents=agents, state=est, key=k_estimate
        )
        if self.task_normalize is not None:
            scale = self.task_normalize / (optax.tree.norm(grad) + 1e-12)
            grad = jax.tree.map(lambda g: g * scale, grad)
        metrics = {f"{task.name}/{k}": v for k, v in m.log().items()}
        metrics[f"{task.name}/resets"] = jnp.sum(mask)
        return grad, agents, est, metrics, m.env_steps(loop)

    def step(self, state: TruncatedState) -> tuple[TruncatedState, Metrics]:
        """One meta-step (pure: [`l2orl.meta_train`][] jits it)."""
        optimizer = self.optimizer_at(state)
        key, k_length, *task_keys = jax.random.split(state.key, 2 + 2 * len(self.tasks))
        length = self.schedule.sample(k_length, state.meta_step)
        metrics = {"K": length}
        if self.schedule.min_length == self.schedule.max_length:
            length = self.schedule.max_length  # static: the unrolls need no masking
        grads, agents, estimator_states = [], [], []
        env_steps = jnp.zeros((), jnp.float32)
        for i in range(len(self.tasks)):
            keys = (task_keys[2 * i], task_keys[2 * i + 1])
            grad, task_agents, est, m, steps = self._task_step(state, i, optimizer, length, keys)
            grads.append(grad)
            agents.append(task_agents)
            estimator_states.append(est)
            metrics.update(m)
            env_steps += steps
        grad = jax.tree.map(lambda *g: sum(g) / len(g), *grads)
        meta_loss = sum(metrics[f"{t.name}/meta_loss"] for t in self.tasks) / len(self.tasks)
        updated = (tuple(agents), tuple(estimator_states))
        new_state = self._apply(state, grad, meta_loss, updated, key)
        metrics.update(
            meta_loss=meta_loss,
            grad_norm=optax.tree.norm(grad),
            env_steps=env_steps,
            skipped=new_state.skipped,
        )
        return new_state, {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}

    def _apply(self, state: TruncatedState, grad, meta_loss, updated, key) -> TruncatedState:
        """The state after the meta-gradient `grad` (with `updated`: the tasks' agents and
        estimator states, and the next `key`): applied if it and `meta_loss` are finite, else
        the old state with the step counted as skipped."""
        finite = jnp.isfinite(meta_loss) & jnp.all(
            jnp.asarray([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grad)])
        )
        safe_grad = jax.tree.map(lambda g: jnp.where(finite, g, 0.0), grad)
        updates, meta_opt_state = self.meta_optimizer.update(
            safe_grad, state.meta_opt_state, state.meta_params
        )
        new = (optax.apply_updates(state.meta_params, updates), meta_opt_state)
        old = (state.meta_params, state.meta_opt_state, state.agents, state.estimator_states)
        meta_params, meta_opt_state, agents, estimator_states = tree_select(
            finite, (*new, *updated), old
        )
        new_state = TruncatedState(
            meta_params,
            meta_opt_state,
            agents,
            state.offsets,
            estimator_states,
            state.meta_step + 1,
            state.skipped + (~finite).astype(jnp.int32),
            key,
        )
        shardings = state_shardings(new_state, self._n_agents())
        if shardings is not None:  # placed as the input: the same on every process
            new_state = jax.lax.with_sharding_constraint(new_state, shardings)
        return new_state

    def config(self) -> dict:
        """The run's configuration as JSON: the optimizer's module tree and every setting."""
        return {
            "algorithm": type(self).__name__,
            "optimizer": describe(self.optimizer),
            "tasks": [t.config() for t in self.tasks],
            "pipeline": [describe(p) for p in self.pipelines()],
            "estimator": describe(self.estimator),
            "meta_loss": describe(self.meta_loss),
            "schedule": describe(self.schedule),
            "task_normalize": self.task_normalize,
        }


def _reset(
    task: MetaTask,
    optimizer: AbstractLearnedOptimizer,
    agents: AgentsState,
    mask: Bool[Array, " n"],
    key: PRNGKey,
) -> AgentsState:
    """The agents in `mask` replaced by fresh ones; fresh agents are built only on meta-steps
    where some agent resets."""

    def reset(agents):
        fresh = task.fresh_agents(optimizer, jax.random.split(key, agents.age.shape[0]))
        return tree_select(mask, fresh, agents)

    return jax.lax.cond(jnp.any(mask), reset, lambda a: a, agents)
