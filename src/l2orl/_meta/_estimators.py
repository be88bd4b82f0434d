import abc
import dataclasses
import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PyTree

from .._custom_types import Metrics, PRNGKey
from .._learner import UpdateMetrics, mean_return
from .._lopt import AbstractLearnedOptimizer
from .._utils import check_fraction, check_positive, check_positive_int, tree_select
from ._coordinates import check_coordinatewise, sampled_meta_gradient
from ._inner import InnerLoop
from ._shaping import check_fitness_shaping, finite_mean, shape_fitness
from ._sharding import agent_devices
from ._task import AgentsState


class EstimateMetrics(eqx.Module):
    """What an estimator reports about one task's meta-step (scalars).

    **Attributes:** `meta_loss` (the mean meta-loss of the scored unrolls), `return_sum`,
    `episodes` and `agent_loss` (the returns and number of the episodes that ended during the
    inner updates, and the learner's mean loss over them), `late_return_sum` and
    `late_episodes` (the same of the older half of the agents: those at least as old as the
    median agent, so past about half their lifetime in a staggered pipeline), `inner_updates`
    (how many inner updates ran, perturbed copies included) and `unrolls` (how many unrolls the
    meta-loss scored).
    """

    meta_loss: Float[Array, ""]
    return_sum: Float[Array, ""]
    episodes: Float[Array, ""]
    late_return_sum: Float[Array, ""]
    late_episodes: Float[Array, ""]
    agent_loss: Float[Array, ""]
    inner_updates: Int[Array, ""]
    unrolls: int = eqx.field(static=True)

    @classmethod
    def of(
        cls,
        meta_loss: Float[Array, ""],
        unrolls: UpdateMetrics,
        ages: Int[Array, " n"],
        length: Int[Array, ""] | int,
        copies: int = 1,
    ) -> "EstimateMetrics":
        """The metrics of `unrolls` (one summary per agent, leading axis `n`, in the order of
        the agents' `ages` at the unroll's start) of `length` inner updates each, run `copies`
        times (2 for antithetic pairs), with mean meta-loss `meta_loss`."""
        n = copies * unrolls.loss.shape[0]
        late = ages >= jnp.median(ages)
        return cls(
            meta_loss=meta_loss,
            return_sum=jnp.sum(unrolls.return_sum),
            episodes=jnp.sum(unrolls.episodes),
            late_return_sum=jnp.sum(jnp.where(late, unrolls.return_sum, 0.0)),
            late_episodes=jnp.sum(jnp.where(late, unrolls.episodes, 0.0)),
            agent_loss=jnp.mean(unrolls.loss),
            inner_updates=jnp.asarray(length * n, jnp.int32),
            unrolls=n,
        )

    def env_steps(self, loop: InnerLoop) -> Float[Array, ""]:
        """The environment steps this estimate took in `loop`: its inner updates' rollouts
        and what its meta-loss took beyond them."""
        inner = self.inner_updates.astype(jnp.float32) * loop.env_steps_per_update()
        return inner + float(self.unrolls * loop.meta_loss.env_steps(loop.task.learner))

    def log(self) -> Metrics:
        """The figures a metrics log records: meta-loss, the return of all agents and of the
        older half (`late_return`), agent loss, episodes."""
        return {
            "meta_loss": self.meta_loss,
            "agent_return": mean_return(self.return_sum, self.episodes),
            "late_return": mean_return(self.late_return_sum, self.late_episodes),
            "agent_loss": self.agent_loss,
            "episodes": self.episodes,
        }


class AbstractEstimator(eqx.Module):
    """How a task's truncated meta-gradient is estimated from its persistent agents, like
    `diffrax.AbstractAdjoint`: the same problem, solved differently, chosen by passing an
    object to [`l2orl.TruncatedTraining`][].

    `estimate` returns the meta-gradient (a pytree like the optimizer's meta-parameters), the
    advanced agents and estimator state, and typed metrics; `on_reset` updates the estimator
    state for agents the pipeline just reset; `check_optimizer` refuses an optimizer it
    cannot handle. The class attribute `needs_differentiable_loss` says whether the meta-loss
    must carry gradient.
    """

    needs_differentiable_loss: ClassVar[bool] = False

    @abc.abstractmethod
    def check_optimizer(self, optimizer: AbstractLearnedOptimizer) -> None:
        """Raise a `ValueError` if this estimator cannot estimate `optimizer`'s meta-gradient
        (called when a [`l2orl.TruncatedTraining`][] is made)."""

    @abc.abstractmethod
    def init(self, meta_params: PyTree, agents: AgentsState, key: PRNGKey) -> PyTree:
        """The estimator's per-task state (`None` if it keeps none)."""

    @abc.abstractmethod
    def on_reset(self, state: PyTree, agents: AgentsState, mask: Bool[Array, " n"]) -> PyTree:
        """The estimator state after the agents in `mask` were reset to `agents`."""

    @abc.abstractmethod
    def estimate(
        self,
        *,
        loop: InnerLoop,
        optimizer: AbstractLearnedOptimizer,
        agents: AgentsState,
        state: PyTree,
        key: PRNGKey,
    ) -> tuple[PyTree, AgentsState, PyTree, EstimateMetrics]:
        """The meta-gradient of `optimizer` (with respect to its floating-point arrays) on
        `agents` (leading axis `n`) run through `loop`.

        **Returns:** `(meta_gradient, agents, state, metrics)`, the meta-gradient shaped like
        `eqx.filter(optimizer, eqx.is_inexact_array)`."""


class AbstractStatelessEstimator(AbstractEstimator):
    """An estimator that keeps no state of its own between meta-steps."""

    def init(self, meta_params: PyTree, agents: AgentsState, key: PRNGKey) -> None:
        return None

    def on_reset(self, state: None, agents: AgentsState, mask: Bool[Array, " n"]) -> None:
        return state


class TruncatedBPTT(AbstractStatelessEstimator):
    """Truncated backpropagation through time: the exact gradient of the meta-loss through the
    `K` inner updates of each agent, averaged over agents.

    Gradients stop at the unroll's start (the agents' states are inputs), and the optimizer's
    inputs are stop-gradiented by the optimizer itself (`stop_gradient_inputs`), as the
    reference. Two routes compute it:

    - `coordinate_fraction=None`: autodiff through the unroll (any optimizer, any learner).
      `remat=True` rematerialises each inner update in the backward pass.
    - `coordinate_fraction=p` in `(0, 1]`: by coordinates. For an
      [`l2orl.AbstractCoordinatewiseOptimizer`][] with stop-gradiented inputs the
      meta-gradient is `Σ_c a_c·Σ_k ∂Δθ_{k,c}/∂φ` with `a = ∂L/∂θ_K`: the inner updates run
      forward only, recording each sampled coordinate's optimizer inputs, one backward pass
      through the meta-loss gives `a`, and the recurrences of a stratified sample of a
      fraction `p` of each agent's coordinates per parameter tensor are back-propagated,
      weighted so that the estimate is unbiased. `p = 1` is the exact gradient (to float
      rounding) at the cost of a forward pass and the cells' backward; smaller `p` cuts the
      backward `1/p` times. It needs the meta-loss to depend on the meta-parameters only
      through the parameters `θ_K` (true of [`l2orl.AgentLoss`][] with the library's
      learners, whose environments return stop-gradiented observations), and refuses an
      optimizer whose coordinates share meta-parameterised state.

    `agents_per_chunk=c` runs the agents `c` at a time, one chunk after another (a `lax.scan`
    over `n_agents / c` chunks, the agents carried and updated in place; a chunk is a
    contiguous slice of each device's share of the agents, so it spans all devices when agents
    are sharded): the memory, which grows with the number of agents run together, shrinks
    about `n_agents / c` times, for the same meta-gradient up to float rounding.
    """

    remat: bool = eqx.field(static=True, default=False)
    agents_per_chunk: int | None = eqx.field(static=True, default=None)
    coordinate_fraction: float | None = eqx.field(static=True, default=None)
    needs_differentiable_loss: ClassVar[bool] = True

    def __check_init__(self):
        check_positive_int("agents_per_chunk", self.agents_per_chunk, optional=True)
        if self.coordinate_fraction is not None:
            check_fraction("coordinate_fraction", self.coordinate_fraction)
            if self.remat:
                raise ValueError(
                    "remat rematerialises the autodiff route; the coordinate route "
                    f"(coordinate_fraction={self.coordinate_fraction}) never differentiates "
                    "through the unroll: drop one"
                )

    def check_optimizer(self, optimizer):
        if self.coordinate_fraction is not None:
            check_coordinatewise(optimizer)

    def _chunk_gradient(self, loop: InnerLoop, optimizer: AbstractLearnedOptimizer):
        """`(meta_params, agents, keys) -> ((mean loss, (agents, summaries)), gradient)` for
        a chunk of agents, by the route this estimator takes."""
        _, static = eqx.partition(optimizer, eqx.is_inexact_array)
        if self.coordinate_fraction is not None:
            fraction = self.coordinate_fraction

            def sampled(params, agents, keys):
                optimizer = eqx.combine(params, static)
                return sampled_meta_gradient(loop, optimizer, agents, keys, fraction)

            return sampled
        loop = dataclasses.replace(loop, remat=self.remat)

        def chunk_loss(params, agents, keys):
            run = jax.vmap(lambda a, k: loop.unroll(eqx.combine(params, static), a, k))
            losses, agents, summaries = run(agents, keys)
            return jnp.mean(losses), (agents, summaries)

        return eqx.filter_value_and_grad(chunk_loss, has_aux=True)

    def estimate(self, *, loop, optimizer, agents, state, key):
        if not loop.meta_loss.differentiable:
            raise ValueError(
                "TruncatedBPTT needs a differentiable meta-loss, got "
                f"{type(loop.meta_loss).__name__}"
            )
        self.check_optimizer(optimizer)
        n = agents.age.shape[0]
        chunk = n if self.agents_per_chunk is None else self.agents_per_chunk
        if n % chunk:
            raise ValueError(
                f"agents_per_chunk={chunk} must divide task {loop.task.name!r}'s {n} agents"
            )
        meta_params = eqx.filter(optimizer, eqx.is_inexact_array)
        chunk_grad = self._chunk_gradient(loop, optimizer)
        keys = jax.random.split(key, n)
        if chunk == n:
            (loss, (new, summaries)), grad = chunk_grad(meta_params, agents, keys)
        else:
            loss, new, summaries, grad = _in_chunks(chunk_grad, meta_params, agents, keys, chunk)
        metrics = EstimateMetrics.of(loss, summaries, agents.age, loop.length)
        return grad, new, state, metrics


def _in_chunks(chunk_grad, meta_params: PyTree, agents: AgentsState, keys, chunk: int):
    """`chunk_grad` over the agents `chunk` at a time, in a `lax.scan`; **returns** the mean
    loss, the advanced agents, their summaries and the mean gradient.

    Agents as [block, chunk index, agent]: a block is one device's contiguous share of the
    agents and chunk c takes the c-th slice of every block. The agents are the scan's carry,
    each chunk written back in place."""
    n = agents.age.shape[0]
    n_chunks, blocks = n // chunk, math.gcd(agent_devices(n), chunk)

    def grid(x):
        return x.reshape(blocks, n_chunks, chunk // blocks, *x.shape[1:])

    def take(x, c):
        x = jax.lax.dynamic_index_in_dim(x, c, 1, keepdims=False)
        return x.reshape(chunk, *x.shape[2:])

    def put(x, y, c):
        y = y.reshape(blocks, 1, chunk // blocks, *y.shape[1:])
        return jax.lax.dynamic_update_slice_in_dim(x, y, c, 1)

    def body(carry, c):
        total, agents_grid = carry
        part = jax.tree.map(lambda x: take(x, c), agents_grid)
        (loss, (new, summaries)), grad = chunk_grad(meta_params, part, take(keys, c))
        agents_grid = jax.tree.map(lambda x, y: put(x, y, c), agents_grid, new)
        return (jax.tree.map(jnp.add, total, grad), agents_grid), (loss, summaries)

    keys = grid(keys)
    zeros = jax.tree.map(jnp.zeros_like, meta_params)
    start = (zeros, jax.tree.map(grid, agents))
    (total, agents_grid), (losses, summaries) = jax.lax.scan(body, start, jnp.arange(n_chunks))
    grad = jax.tree.map(lambda g: g / n_chunks, total)
    new = jax.tree.map(lambda x: x.reshape(n, *x.shape[3:]), agents_grid)
    # [chunk, block, slot] back to the agents' order [block, chunk, slot]
    summaries = jax.tree.map(
        lambda x: x.reshape(n_chunks, blocks, -1).swapaxes(0, 1).reshape(n), summaries
    )
    return jnp.mean(losses), new, summaries, grad


def noise(meta_params: PyTree, key: PRNGKey, n: int, std: float) -> PyTree:
    """`n` Gaussian perturbations of `meta_params` (leading axis `n`), of scale `std`."""
    leaves, treedef = jax.tree.flatten(meta_params)
    keys = jax.random.split(key, len(leaves))
    return treedef.unflatten(
        [
            std * jax.random.normal(k, (n, *x.shape), x.dtype)
            for k, x in zip(keys, leaves, strict=True)
        ]
    )


def _antithetic(loop: InnerLoop, optimizer, eps: PyTree, pos: AgentsState, neg: AgentsState, key):
    """Both antithetic unrolls of every agent (same keys: common random numbers): the `+ε`
    ones from `pos`, the `−ε` ones from `neg`. **Returns:** `(losses⁺, losses⁻, agents⁺,
    agents⁻, summaries⁺)`."""
    meta_params, static = eqx.partition(optimizer, eqx.is_inexact_array)

    def one(eps_j, pos_j, neg_j, key):
        plus = eqx.combine(jax.tree.map(jnp.add, meta_params, eps_j), static)
        minus = eqx.combine(jax.tree.map(jnp.subtract, meta_params, eps_j), static)
        lp, pos_j, summary = loop.unroll(plus, pos_j, key)
        lm, neg_j, _ = loop.unroll(minus, neg_j, key)
        return lp, lm, pos_j, neg_j, summary

    return jax.vmap(one)(eps, pos, neg, jax.random.split(key, pos.age.shape[0]))


def antithetic_metrics(
    lp: Float[Array, " n"],
    lm: Float[Array, " n"],
    ages: Int[Array, " n"],
    length: Int[Array, ""] | int,
    summaries: UpdateMetrics,
    shaping: str,
) -> EstimateMetrics:
    """An antithetic step's metrics: the pairs' mean loss (without shaping; over the finite
    losses with it), the `+ε` agents' figures, and the updates and unrolls of both members
    of every pair."""
    if shaping == "none":
        meta_loss = jnp.mean(0.5 * (lp + lm))
    else:
        meta_loss = finite_mean(jnp.concatenate([lp, lm]))
    return EstimateMetrics.of(meta_loss, summaries, ages, length, copies=2)


def antithetic_gradient(
    lp: Float[Array, " n"], lm: Float[Array, " n"], directions: PyTree, std: float, shaping: str
) -> PyTree:
    """`mean_j (F⁺_j − F⁻_j)·d_j / (2σ²)`, `F` the pairs' losses shaped jointly."""
    n = lp.shape[0]
    shaped = shape_fitness(jnp.concatenate([lp, lm]), shaping)
    scale = (shaped[:n] - shaped[n:]) / (2.0 * std**2)
    return jax.tree.map(lambda d: jnp.tensordot(scale, d, axes=1) / n, directions)


class TruncatedES(AbstractStatelessEstimator):
    """Antithetic evolution strategies over each truncated unroll (one noise pair per agent):
    `ĝ = mean_j (F⁺_j - F⁻_j)·ε_j / (2σ²)`, `ε_j ~ N(0, σ²)`, where `F±_j` are the losses
    `L(φ±ε_j)` of all `2n` unrolls shaped jointly by `fitness_shaping` (one of
    [`l2orl.FITNESS_SHAPINGS`][], see [`l2orl.shape_fitness`][]; `"none"`, the default, uses
    the losses themselves).

    Both members of a pair start from the agent's state; the agent then continues from the
    `+ε` unroll. Works with any meta-loss.

    **Diverged unrolls.** Without shaping, a non-finite loss makes the estimate and the
    meta-loss non-finite, and the trainer skips the meta-step (the agents stay as they were).
    With `"centered_ranks"` or `"z_score"` a non-finite loss counts as the worst of the `2n`:
    the estimate stays finite, the reported meta-loss is the mean of the finite losses (NaN
    only when none is), and the step is applied. An agent whose `+ε` unroll diverged keeps
    its non-finite parameters, its unrolls ranked worst at every meta-step, until its
    pipeline resets it: shape with a pipeline that resets. A shaped estimate has the scale
    of the shaped fitness, not the loss's: pair it with a scale-free meta-optimizer (Adam).
    """

    std: float = eqx.field(static=True, default=0.01)
    fitness_shaping: str = eqx.field(static=True, default="none")

    def __check_init__(self):
        check_positive("std", self.std)
        check_fitness_shaping(self.fitness_shaping)

    def check_optimizer(self, optimizer):
        """Every optimizer is accepted."""

    def estimate(self, *, loop, optimizer, agents, state, key):
        k_eps, k_run = jax.random.split(key)
        meta_params = eqx.filter(optimizer, eqx.is_inexact_array)
        eps = noise(meta_params, k_eps, agents.age.shape[0], self.std)
        lp, lm, new, _, summaries = _antithetic(loop, optimizer, eps, agents, agents, k_run)
        grad = antithetic_gradient(lp, lm, eps, self.std, self.fitness_shaping)
        metrics = antithetic_metrics(
            lp, lm, agents.age, loop.length, summaries, self.fitness_shaping
        )
        return grad, new, state, metrics


class PESState(eqx.Module):
    """Persistent ES state: the `-ε` particles' agents and each pair's noise accumulator `ξ`."""

    negative: AgentsState
    accumulated: PyTree


class PES(AbstractEstimator):
    """Persistent evolution strategies (Vicol et al., 2021): unbiased over the whole lifetime.

    Each agent is an antithetic pair of particles that persist across meta-steps, perturbed by
    `±ε_t`; `ξ_j` accumulates the pair's perturbations since its reset and
    `ĝ = mean_j (F⁺_j - F⁻_j)·ξ_j / (2σ²)`, `F±_j` the losses `L(φ±ε_j)` shaped jointly by
    `fitness_shaping` as in [`l2orl.TruncatedES`][]. A reset agent's pair restarts together
    and its `ξ` is zeroed.

    With shaping, a particle whose unroll diverged persists with non-finite parameters (and
    its pair keeps its `ξ`) until the pipeline resets the pair; meanwhile its losses rank
    worst and the estimate stays finite, as for [`l2orl.TruncatedES`][].
    """

    std: float = eqx.field(static=True, default=0.01)
    fitness_shaping: str = eqx.field(static=True, default="none")

    def __check_init__(self):
        check_positive("std", self.std)
        check_fitness_shaping(self.fitness_shaping)

    def check_optimizer(self, optimizer):
        """Every optimizer is accepted."""

    def init(self, meta_params, agents, key):
        zeros = jax.tree.map(
            lambda x: jnp.zeros((agents.age.shape[0], *x.shape), x.dtype), meta_params
        )
        return PESState(agents, zeros)

    def on_reset(self, state, agents, mask):
        zeros = jax.tree.map(jnp.zeros_like, state.accumulated)
        return PESState(
            tree_select(mask, agents, state.negative),
            tree_select(mask, zeros, state.accumulated),
        )

    def estimate(self, *, loop, optimizer, agents, state, key):
        k_eps, k_run = jax.random.split(key)
        meta_params = eqx.filter(optimizer, eqx.is_inexact_array)
        eps = noise(meta_params, k_eps, agents.age.shape[0], self.std)
        accumulated = jax.tree.map(jnp.add, state.accumulated, eps)
        lp, lm, new, negative, summaries = _antithetic(
            loop, optimizer, eps, agents, state.negative, k_run
        )
        grad = antithetic_gradient(lp, lm, accumulated, self.std, self.fitness_shaping)
        metrics = antithetic_metrics(
            lp, lm, agents.age, loop.length, summaries, self.fitness_shaping
        )
        return grad, new, PESState(negative, accumulated), metrics


ESTIMATORS: dict[str, type[AbstractEstimator]] = {
    "tbptt": TruncatedBPTT,
    "es": TruncatedES,
    "pes": PES,
}
"""The truncated estimators by the name a `MetaTrainConfig` gives them."""
