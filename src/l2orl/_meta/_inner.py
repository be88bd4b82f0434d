"""The inner loop of one meta-step on one task: what every estimator and algorithm runs."""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float, Int, PyTree

from .._custom_types import PRNGKey
from .._learner import UpdateMetrics, scan_updates
from .._lopt import AbstractLearnedOptimizer
from ._losses import AbstractMetaLoss
from ._task import OPTIMIZER_SLOT, AgentsState, MetaTask


def summarize(metrics: UpdateMetrics, active: Bool[Array, " K"]) -> UpdateMetrics:
    """An unroll's summary: `return_sum` and `episodes` summed over the updates that ran, and
    their mean `loss`."""
    return UpdateMetrics(
        loss=jnp.sum(metrics.loss * active) / jnp.maximum(jnp.sum(active), 1),
        return_sum=jnp.sum(metrics.return_sum * active),
        episodes=jnp.sum(metrics.episodes * active),
    )


class InnerLoop(eqx.Module):
    """A task's inner loop for one meta-step: `length` (≤ `max_length`) inner updates of an
    agent, then the meta-loss. An estimator calls it instead of passing the task, learner,
    environment and loop facts around.

    The scan always runs `max_length` updates; those past a traced `length` leave the state
    unchanged (a Python int `length` is known to cover every update: nothing is masked). An
    agent `age` updates old of a `lifetime` tells the optimizer its training proportion
    ([`l2orl.UpdateContext`][]). With `remat`, each inner update is rematerialised in the
    backward pass (memory grows with the number of updates by their carries only).

    **Arguments:** `task`, `meta_loss`, `length`, `max_length`, `lifetime` (in inner
    updates), `remat` (False).
    """

    task: MetaTask
    meta_loss: AbstractMetaLoss
    length: Int[Array, ""] | int
    max_length: int = eqx.field(static=True)
    lifetime: int = eqx.field(static=True)
    remat: bool = eqx.field(static=True, default=False)

    def transform(
        self,
        optimizer: AbstractLearnedOptimizer,
        core: optax.GradientTransformationExtraArgs | None = None,
    ) -> optax.GradientTransformationExtraArgs:
        """The task's transform around `optimizer` (or `core` in its slot)."""
        return self.task.transform(optimizer, core)

    def updates(
        self, tx: optax.GradientTransformation, agent: AgentsState, key: PRNGKey
    ) -> tuple[AgentsState, UpdateMetrics, Bool[Array, " K"], PRNGKey]:
        """One agent's inner updates through `tx`: the part of `unroll` before its meta-loss.

        **Returns:** `(agent, metrics, active, loss_key)`: the agent after them (its age
        advanced by `length`), the metrics stacked over the `max_length` updates, which ran,
        and the key the meta-loss takes."""
        k_unroll, k_loss = jax.random.split(key)
        keys = jax.random.split(k_unroll, self.max_length)
        traced = None if isinstance(self.length, int) else self.length
        task = self.task
        learner, opt_state, metrics, active = scan_updates(
            task.learner,
            task.env,
            tx,
            agent.learner,
            agent.opt_state,
            keys,
            traced,
            self.remat,
            (agent.age, self.lifetime),
        )
        return AgentsState(learner, opt_state, agent.age + self.length), metrics, active, k_loss

    def score(
        self, learner: PyTree, metrics: UpdateMetrics, active: Bool[Array, " K"], key: PRNGKey
    ) -> tuple[Float[Array, ""], PyTree]:
        """The meta-loss of a learner state after updates with `metrics` (which ran:
        `active`). **Returns:** `(loss, learner)`."""
        return self.meta_loss(self.task.learner, self.task.env, learner, metrics, active, key)

    def unroll(
        self, optimizer: AbstractLearnedOptimizer, agent: AgentsState, key: PRNGKey
    ) -> tuple[Float[Array, ""], AgentsState, UpdateMetrics]:
        """One agent's inner updates with `optimizer`, then the meta-loss.

        **Returns:** `(loss, agent, summary)` (see `summarize`)."""
        agent, metrics, active, k_loss = self.updates(self.transform(optimizer), agent, key)
        loss, learner = self.score(agent.learner, metrics, active, k_loss)
        return loss, AgentsState(learner, agent.opt_state, agent.age), summarize(metrics, active)

    def optimizer_state(self, opt_state: PyTree) -> PyTree:
        """The learned optimizer's own state inside a state of the task's transform."""
        return opt_state[OPTIMIZER_SLOT]

    def with_optimizer_state(self, opt_state: PyTree, inner: PyTree) -> PyTree:
        """A state of the task's transform with the learned optimizer's replaced by `inner`."""
        return type(opt_state)({**opt_state, OPTIMIZER_SLOT: inner})

    def env_steps_per_update(self) -> int:
        """Environment steps one agent takes per inner update (one rollout)."""
        return self.task.learner.env_steps_per_update()
