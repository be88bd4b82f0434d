"""Truncated BPTT as a sum over coordinates, back-propagated through a sample of them.

With stop-gradiented optimizer inputs, coordinate `c`'s updates depend on the
meta-parameters `φ` only through its own hidden state, so `θ_K = θ_0 + Σ_k Δθ_k` gives

    ∇φ L = Σ_c a_c · Σ_k ∂Δθ_{k,c}/∂φ,    a = ∂L/∂θ_K.

The inner updates run forward only, recording each sampled coordinate's optimizer inputs;
one backward pass through the meta-loss gives `a`; the sampled coordinates' recurrences are
then replayed and back-propagated with the constant cotangents `a_c`, weighted so that the
sum is unbiased.
"""

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, Int, Key, PyTree

from .._context import context_of
from .._custom_types import PRNGKey
from .._learner import UpdateMetrics
from .._lopt import AbstractCoordinatewiseOptimizer, AbstractLearnedOptimizer
from .._lopt._base import ravel
from .._utils import tree_select
from ._inner import InnerLoop, summarize
from ._task import AgentsState


class CoordinateSample(eqx.Module):
    """Coordinates drawn from the raveled parameters, and their Horvitz–Thompson weights (the
    inverse of each one's probability of being drawn): `Σ_j weight_j·f[index_j]` is an
    unbiased estimate of `Σ_c f_c`."""

    index: Int[Array, " m"]
    weight: Float[Array, " m"]


MIN_PER_TENSOR = 64
"""The fewest coordinates a parameter tensor contributes to a sample (all of a smaller one):
small tensors (biases, output layers) often carry much of the meta-gradient, and cost little."""


def stratified_sample(key: PRNGKey, sizes: tuple[int, ...], fraction: float) -> CoordinateSample:
    """`max(ceil(fraction·n), min(n, MIN_PER_TENSOR))` coordinates of each parameter leaf of
    `n` (leaf sizes `sizes`, raveled in order): the leaf is cut into that many contiguous
    strata of near-equal size and one coordinate is drawn uniformly from each, weighted by its
    stratum's size. At `fraction=1` every coordinate is drawn once with weight 1."""
    starts, widths, offset = [], [], 0
    for n in sizes:
        m = max(math.ceil(fraction * n), min(n, MIN_PER_TENSOR))
        bounds = (np.arange(m + 1) * n) // m
        starts.append(offset + bounds[:-1])
        widths.append(np.diff(bounds))
        offset += n
    start = jnp.asarray(np.concatenate(starts or [np.zeros(0)]), jnp.int32)
    width = jnp.asarray(np.concatenate(widths or [np.zeros(0)]), jnp.int32)
    u = jax.random.uniform(key, start.shape)
    pick = jnp.minimum((u * width).astype(jnp.int32), width - 1)
    return CoordinateSample(start + pick, width.astype(jnp.float32))


def check_coordinatewise(optimizer: AbstractLearnedOptimizer) -> None:
    """Raise a `ValueError` unless `optimizer`'s meta-gradient is a sum over coordinates."""
    name = type(optimizer).__name__
    route = "use coordinate_fraction=None (autodiff through the unroll)"
    if not isinstance(optimizer, AbstractCoordinatewiseOptimizer):
        raise ValueError(
            f"coordinate_fraction needs an l2orl.AbstractCoordinatewiseOptimizer, whose "
            f"coordinates share no meta-parameterised state; {name} is not one: {route}"
        )
    if not optimizer.stop_gradient_inputs:
        raise ValueError(
            f"coordinate_fraction needs stop-gradiented optimizer inputs; {name} has "
            f"stop_gradient_inputs=False, so its meta-gradient is not a sum over coordinates: "
            f"{route}"
        )
    shared = jax.tree.leaves(eqx.filter(optimizer.input_parts, eqx.is_inexact_array))
    if shared:
        parts = [type(p).__name__ for p in optimizer.input_parts]
        raise ValueError(
            f"coordinate_fraction needs preprocessors without meta-parameters; {name}'s "
            f"preprocessors {parts} hold {len(shared)} arrays that reach every coordinate: "
            f"{route}"
        )


def is_coordinatewise(optimizer: AbstractLearnedOptimizer) -> bool:
    """Whether `check_coordinatewise` accepts `optimizer`."""
    try:
        check_coordinatewise(optimizer)
    except ValueError:
        return False
    return True


def _recording(
    optimizer: AbstractCoordinatewiseOptimizer, take: Callable, record: PyTree
) -> optax.GradientTransformationExtraArgs:
    """`optimizer` as an optax transform whose state also carries `record` (arrays with a
    leading axis of `K` updates): each update shifts it by one and appends the sampled
    coordinates' `coordinate_step` inputs (`take` of every coordinate's), so that after `k ≤ K`
    updates their inputs are its last `k` entries, in order."""

    def init(params):
        return optimizer.init(params), record

    def update(updates, state, params=None, **extra_args):
        inner, recorded = state
        new, inner, inputs = optimizer.coordinate_update(
            updates, inner, params, context_of(extra_args)
        )
        recorded = jax.tree.map(
            lambda r, x: jnp.concatenate([r[1:], take(x)[None]]), recorded, inputs
        )
        return new, (inner, recorded)

    return optax.GradientTransformationExtraArgs(init, update)


def sampled_meta_gradient(
    loop: InnerLoop,
    optimizer: AbstractCoordinatewiseOptimizer,
    agents: AgentsState,
    keys: Key[Array, " n"],
    fraction: float,
) -> tuple[tuple[Float[Array, ""], tuple[AgentsState, UpdateMetrics]], PyTree]:
    """The meta-gradient of the agents' mean meta-loss, by coordinates (see the module), for
    `agents` (leading axis `n`) run through `loop` with keys `keys`; each agent draws its own
    `stratified_sample` of `fraction` of the coordinates.

    The record holds every optimizer update of the unroll:
    `learner.optimizer_updates_per_step()` per inner update (PPO's epochs × minibatches).

    **Returns:** `((mean_loss, (agents, summaries)), meta_gradient)`, as
    `eqx.filter_value_and_grad(..., has_aux=True)` of the unrolls would.

    **Raises:** `ValueError` for an environment whose transitions carry gradient (a brax env
    with `physics_gradient`): its states then carry derivatives into the meta-loss besides
    `θ_K`.
    """
    task = loop.task
    if getattr(task.env, "transition_gradients_enabled", False):
        raise ValueError(
            f"coordinate_fraction needs a meta-loss that depends on the meta-parameters only "
            f"through the agents' parameters; task {task.name!r}'s environment passes "
            "gradients through its transitions (physics_gradient), so its states carry them "
            "too: use coordinate_fraction=None (autodiff through the unroll)"
        )
    forward = _forward(loop, optimizer, agents, fraction)
    losses, agents, summaries, replay = jax.vmap(forward)(agents, keys)
    meta_params, static = eqx.partition(optimizer, eqx.is_inexact_array)
    grad = jax.grad(lambda p: _replay(eqx.combine(p, static), *replay))(meta_params)
    return (jnp.mean(losses), (agents, summaries)), grad


def _forward(
    loop: InnerLoop,
    optimizer: AbstractCoordinatewiseOptimizer,
    agents: AgentsState,
    fraction: float,
) -> Callable:
    """One agent's forward pass (the function to vmap over `(agent, key)`): its inner
    updates, recording its sampled coordinates' inputs, then the meta-loss and its gradient
    `a` in the parameters. **Returns:** `(loss, agent, summary, replay)`."""
    task = loop.task
    one_agent = jax.tree.map(lambda x: x[0], task.learner.params(agents.learner))
    sizes = tuple(int(x.size) for x in jax.tree.leaves(one_agent))
    inputs_shape = jax.eval_shape(
        lambda p, s: optimizer.coordinate_update(p, s, p)[2],
        one_agent,
        jax.tree.map(lambda x: x[0], loop.optimizer_state(agents.opt_state)),
    )
    per_step = task.learner.optimizer_updates_per_step()  # optimizer updates per inner update

    def forward(agent, key):
        sample = stratified_sample(jax.random.fold_in(key, 1), sizes, fraction)

        def take(x):  # every coordinate, in order, needs no gathers
            return x if fraction == 1 else x[..., sample.index]

        m = sample.index.shape[0]
        record = jax.tree.map(
            lambda s: jnp.zeros((loop.max_length * per_step, *s.shape[:-1], m), s.dtype),
            inputs_shape,
        )
        inner = loop.optimizer_state(agent.opt_state)
        hidden = jax.tree.map(take, optimizer.hidden(inner))
        tx = loop.transform(optimizer, _recording(optimizer, take, record))
        start = AgentsState(
            agent.learner, loop.with_optimizer_state(agent.opt_state, (inner, record)), agent.age
        )
        agent, metrics, active, k_loss = loop.updates(tx, start, key)
        inner, record = loop.optimizer_state(agent.opt_state)
        score = eqx.filter_value_and_grad(
            lambda state: loop.score(state, metrics, active, k_loss), has_aux=True
        )
        (loss, learner), d_state = score(agent.learner)
        d_theta = take(ravel(task.learner.params(d_state)))
        cotangent = d_theta * sample.weight * task.update_scale
        replay = (record, hidden, cotangent, jnp.repeat(active, per_step))
        agent = AgentsState(learner, loop.with_optimizer_state(agent.opt_state, inner), agent.age)
        return loss, agent, summarize(metrics, active), replay

    return forward


def _replay(
    optimizer: AbstractCoordinatewiseOptimizer,
    record: PyTree,
    hidden: PyTree,
    cotangent: Float[Array, "n m"],
    active: Bool[Array, "n R"],
) -> Float[Array, ""]:
    """The surrogate whose gradient in `optimizer`'s meta-parameters is the sampled
    meta-gradient: each agent's recorded inputs replayed through the cells from `hidden`, its
    updates dotted with the constant `cotangent`, averaged over agents."""

    def agent(record, hidden, cotangent, active):
        # The record holds the updates that ran as its last entries: replay it in order,
        # skipping the leading entries of updates that did not run.
        def step(hidden, inputs):
            inputs, ran = inputs
            delta, new_hidden = optimizer.coordinate_step(inputs, hidden)
            hidden = tree_select(ran, new_hidden, hidden)
            return hidden, jnp.where(ran, jnp.vdot(delta, cotangent), 0.0)

        # Unrolled: XLA CPU runs the cells several times slower inside a loop's body.
        return jnp.sum(jax.lax.scan(step, hidden, (record, active[::-1]), unroll=True)[1])

    return jnp.mean(jax.vmap(agent)(record, hidden, cotangent, active))
