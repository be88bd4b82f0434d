import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PyTree

from .._custom_types import PRNGKey
from .._learner import UpdateMetrics
from .._lopt import AbstractLearnedOptimizer
from .._utils import tree_select
from ._losses import AbstractMetaLoss
from ._task import MetaTask


def unroll(
    optimizer: AbstractLearnedOptimizer,
    task: MetaTask,
    meta_loss: AbstractMetaLoss,
    learner_state: PyTree,
    opt_state: PyTree,
    length: Int[Array, ""] | int,
    max_length: int,
    key: PRNGKey,
    remat: bool = False,
) -> tuple[Float[Array, ""], PyTree, PyTree, UpdateMetrics]:
    """One agent: `length` (≤ `max_length`) inner updates with `optimizer`, then the meta-loss.

    The scan always runs `max_length` steps; steps past a traced `length` leave the state
    unchanged (a Python int `length` is known to cover every step: nothing is masked).
    With `remat`, each inner update is rematerialised in the backward pass (peak memory grows
    with the number of updates by their carries only, not their activations).

    **Returns:** `(loss, learner_state, opt_state, summary)`, the summary's `return_sum` and
    `episodes` summed over the updates that ran and its `loss` their mean.
    """
    tx = task.transform(optimizer)

    def update(carry, key):
        state, opt = carry
        state, opt, metrics = task.learner.step(task.env, state, tx, opt, key)
        return (state, opt), metrics

    if remat:
        update = eqx.filter_checkpoint(update)

    def body(carry, inputs):
        index, key = inputs
        new_carry, metrics = update(carry, key)
        if isinstance(length, int):
            return new_carry, (metrics, jnp.ones((), bool))
        active = index < length
        return tree_select(active, new_carry, carry), (metrics, active)

    k_unroll, k_loss = jax.random.split(key)
    keys = jax.random.split(k_unroll, max_length)
    (state, opt), (metrics, active) = jax.lax.scan(
        body, (learner_state, opt_state), (jnp.arange(max_length), keys)
    )
    loss, state = meta_loss(task.learner, task.env, state, metrics, active, k_loss)
    summary = UpdateMetrics(
        loss=jnp.sum(metrics.loss * active) / jnp.maximum(jnp.sum(active), 1),
        return_sum=jnp.sum(metrics.return_sum * active),
        episodes=jnp.sum(metrics.episodes * active),
    )
    return loss, state, opt, summary
