import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float, Int, PyTree

from .._custom_types import PRNGKey
from .._learner import UpdateMetrics, scan_updates
from .._lopt import AbstractLearnedOptimizer
from ._losses import AbstractMetaLoss
from ._task import MetaTask


def inner_updates(
    task: MetaTask,
    tx: optax.GradientTransformation,
    learner_state: PyTree,
    opt_state: PyTree,
    length: Int[Array, ""] | int,
    max_length: int,
    key: PRNGKey,
    remat: bool = False,
    progress: tuple[Int[Array, ""] | int, int] | None = None,
) -> tuple[PyTree, PyTree, UpdateMetrics, Bool[Array, " K"], PRNGKey]:
    """One agent's `length` (≤ `max_length`) inner updates through `tx`: the part of an
    [`unroll`][l2orl._meta._unroll.unroll] before its meta-loss.

    **Returns:** `(learner_state, opt_state, metrics, active, loss_key)`, the metrics stacked
    over the `max_length` updates, `active` saying which ran, and the key the meta-loss takes.
    `progress = (age, lifetime)` gives the updates their training proportion (see
    `scan_updates`).
    """
    k_unroll, k_loss = jax.random.split(key)
    keys = jax.random.split(k_unroll, max_length)
    traced = None if isinstance(length, int) else length
    state, opt, metrics, active = scan_updates(
        task.learner, task.env, tx, learner_state, opt_state, keys, traced, remat, progress
    )
    return state, opt, metrics, active, k_loss


def summarize(metrics: UpdateMetrics, active: Bool[Array, " K"]) -> UpdateMetrics:
    """An unroll's summary: `return_sum` and `episodes` summed over the updates that ran, and
    their mean `loss`."""
    return UpdateMetrics(
        loss=jnp.sum(metrics.loss * active) / jnp.maximum(jnp.sum(active), 1),
        return_sum=jnp.sum(metrics.return_sum * active),
        episodes=jnp.sum(metrics.episodes * active),
    )


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
    progress: tuple[Int[Array, ""] | int, int] | None = None,
) -> tuple[Float[Array, ""], PyTree, PyTree, UpdateMetrics]:
    """One agent: `length` (≤ `max_length`) inner updates with `optimizer`, then the meta-loss.

    The scan always runs `max_length` steps; steps past a traced `length` leave the state
    unchanged (a Python int `length` is known to cover every step: nothing is masked).
    With `remat`, each inner update is rematerialised in the backward pass (peak memory grows
    with the number of updates by their carries only, not their activations). `progress =
    (age, lifetime)`: the agent's age and lifetime in updates, for the training proportion.

    **Returns:** `(loss, learner_state, opt_state, summary)` (see `summarize`).
    """
    tx = task.transform(optimizer)
    state, opt, metrics, active, k_loss = inner_updates(
        task, tx, learner_state, opt_state, length, max_length, key, remat, progress
    )
    loss, state = meta_loss(task.learner, task.env, state, metrics, active, k_loss)
    return loss, state, opt, summarize(metrics, active)
