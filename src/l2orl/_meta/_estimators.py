import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PyTree

from .._custom_types import Metrics, PRNGKey
from ._losses import AbstractMetaLoss
from ._task import AgentsState, MetaTask, agent_devices, fresh_agents, tree_select


def unroll(
    optimizer,
    task: MetaTask,
    meta_loss: AbstractMetaLoss,
    learner_state: PyTree,
    opt_state: PyTree,
    length: Int[Array, ""] | int,
    max_length: int,
    key: PRNGKey,
    remat: bool = False,
) -> tuple[Float[Array, ""], PyTree, PyTree, Metrics]:
    """One agent: `length` (≤ `max_length`) inner updates with `optimizer`, then the meta-loss.

    The scan always runs `max_length` steps; steps past a traced `length` leave the state
    unchanged (a Python int `length` is known to cover every step: nothing is masked).
    With `remat`, each inner update is rematerialised in the backward pass (peak memory grows
    with the number of updates by their carries only, not their activations).

    **Returns:** `(loss, learner_state, opt_state, metrics)`.
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
    n = jnp.maximum(jnp.sum(active), 1)
    summary = {
        "agent_return": jnp.sum(metrics["return_sum"] * active)
        / jnp.maximum(jnp.sum(metrics["episodes"] * active), 1.0),
        "agent_episodes": jnp.sum(metrics["episodes"] * active),
        "agent_loss": jnp.sum(metrics["loss"] * active) / n,
    }
    return loss, state, opt, summary


def _mean_metrics(metrics: Metrics) -> Metrics:
    episodes = metrics["agent_episodes"]
    weighted = jnp.sum(metrics["agent_return"] * episodes) / jnp.maximum(jnp.sum(episodes), 1.0)
    return {
        "agent_return": weighted,
        "agent_loss": jnp.mean(metrics["agent_loss"]),
        "episodes": jnp.sum(episodes),
    }


class AbstractEstimator(eqx.Module):
    """How a task's meta-gradient is estimated from its agents, like `diffrax.AbstractAdjoint`:
    the same problem, solved differently, chosen by passing an object.

    `estimate` returns the meta-gradient (a pytree like the meta-parameters), the advanced
    agents and estimator state, and metrics; `on_reset` updates the estimator state for agents
    the pipeline just reset.
    """

    @abc.abstractmethod
    def init(self, meta_params: PyTree, agents: AgentsState, key: PRNGKey) -> PyTree:
        """The estimator's per-task state (`None` if it keeps none)."""

    @abc.abstractmethod
    def on_reset(self, state: PyTree, agents: AgentsState, mask: Bool[Array, " n"]) -> PyTree:
        """The estimator state after the agents in `mask` were reset to `agents`."""

    @abc.abstractmethod
    def estimate(
        self,
        meta_params: PyTree,
        static: PyTree,
        task: MetaTask,
        meta_loss: AbstractMetaLoss,
        agents: AgentsState,
        state: PyTree,
        length: Int[Array, ""] | int,
        max_length: int,
        key: PRNGKey,
    ) -> tuple[PyTree, AgentsState, PyTree, Metrics]:
        """`length` is this meta-step's `K`: a traced int32 ≤ `max_length`, or a Python int
        when the schedule's `K` never varies (then no inner update needs masking).

        **Returns:** `(meta_gradient, agents, state, metrics)`, metrics with `meta_loss`."""


class AbstractStatelessEstimator(AbstractEstimator):
    """An estimator that keeps no state of its own between meta-steps."""

    def init(self, meta_params: PyTree, agents: AgentsState, key: PRNGKey) -> None:
        return None

    def on_reset(self, state: None, agents: AgentsState, mask: Bool[Array, " n"]) -> None:
        return state


def _check_std(std: float) -> None:
    if not std > 0:
        raise ValueError(f"std must be positive, got {std!r}")


def _advance(
    agents: AgentsState, learner: PyTree, opt_state: PyTree, length: Int[Array, ""] | int
) -> AgentsState:
    return AgentsState(learner, opt_state, agents.offsets, agents.age + length)


class TruncatedBPTT(AbstractStatelessEstimator):
    """Truncated backpropagation through time: the exact gradient of the meta-loss through the
    `K` inner updates of each agent, averaged over agents.

    Gradients stop at the unroll's start (the agents' states are inputs), and the optimizer's
    inputs are stop-gradiented by the optimizer itself (`stop_gradient_inputs`), as the
    reference. `remat=True` rematerialises each inner update in the backward pass.
    `agents_per_chunk=c` differentiates the agents `c` at a time, one chunk after another (a
    `lax.scan` over `n_agents / c` chunks, the agents carried and updated in place; a chunk is
    a contiguous slice of each device's share of the agents, so it spans all devices when
    agents are sharded): the backward pass's memory, which grows with the number of agents
    differentiated together, shrinks about `n_agents / c` times, for the same meta-gradient
    up to float rounding.
    """

    remat: bool = eqx.field(static=True, default=False)
    agents_per_chunk: int | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if self.agents_per_chunk is not None and not self.agents_per_chunk > 0:
            raise ValueError(
                f"agents_per_chunk must be a positive int or None, got {self.agents_per_chunk!r}"
            )

    def estimate(
        self, meta_params, static, task, meta_loss, agents, state, length, max_length, key
    ):
        if not meta_loss.differentiable:
            raise ValueError(
                f"TruncatedBPTT needs a differentiable meta-loss, got {type(meta_loss).__name__}"
            )
        n = task.pipeline.n_agents
        chunk = n if self.agents_per_chunk is None else self.agents_per_chunk
        if n % chunk:
            raise ValueError(
                f"agents_per_chunk={chunk} must divide task {task.name!r}'s {n} agents"
            )

        def chunk_loss(params, learner, opt_state, keys):
            optimizer = eqx.combine(params, static)
            run = jax.vmap(
                lambda s, o, k: unroll(
                    optimizer, task, meta_loss, s, o, length, max_length, k, self.remat
                )
            )
            losses, learner, opt_state, metrics = run(learner, opt_state, keys)
            return jnp.mean(losses), (learner, opt_state, metrics)

        chunk_grad = eqx.filter_value_and_grad(chunk_loss, has_aux=True)
        keys = jax.random.split(key, n)
        if chunk == n:
            (loss, (learner, opt_state, metrics)), grad = chunk_grad(
                meta_params, agents.learner, agents.opt_state, keys
            )
        else:
            # Agents as [block, chunk index, agent]: a block is one device's contiguous share
            # of the agents and chunk c takes the c-th slice of every block. The agents are
            # the scan's carry, each chunk written back in place.
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
                learner, opt_state = jax.tree.map(lambda x: take(x, c), agents_grid)
                (loss, (*new, metrics)), grad = chunk_grad(
                    meta_params, learner, opt_state, take(keys, c)
                )
                agents_grid = jax.tree.map(lambda x, y: put(x, y, c), agents_grid, tuple(new))
                return (jax.tree.map(jnp.add, total, grad), agents_grid), (loss, metrics)

            keys = grid(keys)
            zeros = jax.tree.map(jnp.zeros_like, meta_params)
            start = (zeros, jax.tree.map(grid, (agents.learner, agents.opt_state)))
            (total, agents_grid), (losses, metrics) = jax.lax.scan(
                body, start, jnp.arange(n_chunks)
            )
            grad = jax.tree.map(lambda g: g / n_chunks, total)
            loss = jnp.mean(losses)
            learner, opt_state = jax.tree.map(lambda x: x.reshape(n, *x.shape[3:]), agents_grid)
            metrics = jax.tree.map(lambda x: x.reshape(n), metrics)  # in chunk order
        metrics = {
            "meta_loss": loss,
            "inner_updates": jnp.asarray(length * n, jnp.int32),
            "unrolls": n,
            **_mean_metrics(metrics),
        }
        return grad, _advance(agents, learner, opt_state, length), state, metrics


def _noise(meta_params: PyTree, key: PRNGKey, n: int, std: float) -> PyTree:
    leaves, treedef = jax.tree.flatten(meta_params)
    keys = jax.random.split(key, len(leaves))
    return treedef.unflatten(
        [
            std * jax.random.normal(k, (n, *x.shape), x.dtype)
            for k, x in zip(keys, leaves, strict=True)
        ]
    )


def _antithetic(meta_params, static, task, meta_loss, pos, neg, eps, length, max_length, keys):
    """Both antithetic unrolls of every agent (same keys: common random numbers)."""

    def one(eps_j, pos_learner, pos_opt, neg_learner, neg_opt, key):
        plus = eqx.combine(jax.tree.map(jnp.add, meta_params, eps_j), static)
        minus = eqx.combine(jax.tree.map(jnp.subtract, meta_params, eps_j), static)
        lp, pl, po, pm = unroll(
            plus, task, meta_loss, pos_learner, pos_opt, length, max_length, key
        )
        lm, nl, no, _ = unroll(
            minus, task, meta_loss, neg_learner, neg_opt, length, max_length, key
        )
        return lp, lm, (pl, po), (nl, no), pm

    return jax.vmap(one)(eps, *pos, *neg, keys)


def _es_metrics(
    lp: Float[Array, " n"], lm: Float[Array, " n"], length, metrics: Metrics
) -> Metrics:
    """An antithetic step's metrics: mean loss of the pair, updates and unrolls run."""
    n = lp.shape[0]
    return {
        "meta_loss": jnp.mean(0.5 * (lp + lm)),
        "inner_updates": jnp.asarray(2 * n * length, jnp.int32),
        "unrolls": 2 * n,
        **_mean_metrics(metrics),
    }


def _es_gradient(diff: Float[Array, " n"], directions: PyTree, std: float) -> PyTree:
    scale = diff / (2.0 * std**2)
    return jax.tree.map(lambda d: jnp.tensordot(scale, d, axes=1) / diff.shape[0], directions)


class TruncatedES(AbstractStatelessEstimator):
    """Antithetic evolution strategies over each truncated unroll (one noise pair per agent):
    `ĝ = mean_j (L(φ+ε_j) - L(φ-ε_j))·ε_j / (2σ²)`, `ε_j ~ N(0, σ²)`.

    Both members of a pair start from the agent's state; the agent then continues from the
    `+ε` unroll. Works with any meta-loss.
    """

    std: float = eqx.field(static=True, default=0.01)

    def __check_init__(self):
        _check_std(self.std)

    def estimate(
        self, meta_params, static, task, meta_loss, agents, state, length, max_length, key
    ):
        k_eps, k_run = jax.random.split(key)
        n = task.pipeline.n_agents
        eps = _noise(meta_params, k_eps, n, self.std)
        pos = (agents.learner, agents.opt_state)
        lp, lm, (learner, opt_state), _, metrics = _antithetic(
            meta_params,
            static,
            task,
            meta_loss,
            pos,
            pos,
            eps,
            length,
            max_length,
            jax.random.split(k_run, n),
        )
        grad = _es_gradient(lp - lm, eps, self.std)
        metrics = _es_metrics(lp, lm, length, metrics)
        return grad, _advance(agents, learner, opt_state, length), state, metrics


class PESState(eqx.Module):
    """Persistent ES state: the `-ε` particles' agents and each pair's noise accumulator `ξ`."""

    neg_learner: PyTree
    neg_opt_state: PyTree
    accumulated: PyTree


class PES(AbstractEstimator):
    """Persistent evolution strategies (Vicol et al., 2021): unbiased over the whole lifetime.

    Each agent is an antithetic pair of particles that persist across meta-steps, perturbed by
    `±ε_t`; `ξ_j` accumulates the pair's perturbations since its reset and
    `ĝ = mean_j (L(φ+ε_j) - L(φ-ε_j))·ξ_j / (2σ²)`. A reset agent's pair restarts together and
    its `ξ` is zeroed.
    """

    std: float = eqx.field(static=True, default=0.01)

    def __check_init__(self):
        _check_std(self.std)

    def init(self, meta_params, agents, key):
        zeros = jax.tree.map(
            lambda x: jnp.zeros((agents.age.shape[0], *x.shape), x.dtype), meta_params
        )
        return PESState(agents.learner, agents.opt_state, zeros)

    def on_reset(self, state, agents, mask):
        return PESState(
            tree_select(mask, agents.learner, state.neg_learner),
            tree_select(mask, agents.opt_state, state.neg_opt_state),
            tree_select(mask, jax.tree.map(jnp.zeros_like, state.accumulated), state.accumulated),
        )

    def estimate(
        self, meta_params, static, task, meta_loss, agents, state, length, max_length, key
    ):
        k_eps, k_run = jax.random.split(key)
        n = task.pipeline.n_agents
        eps = _noise(meta_params, k_eps, n, self.std)
        accumulated = jax.tree.map(jnp.add, state.accumulated, eps)
        pos = (agents.learner, agents.opt_state)
        neg = (state.neg_learner, state.neg_opt_state)
        lp, lm, (learner, opt_state), (neg_learner, neg_opt), metrics = _antithetic(
            meta_params,
            static,
            task,
            meta_loss,
            pos,
            neg,
            eps,
            length,
            max_length,
            jax.random.split(k_run, n),
        )
        grad = _es_gradient(lp - lm, accumulated, self.std)
        new_state = PESState(neg_learner, neg_opt, accumulated)
        metrics = _es_metrics(lp, lm, length, metrics)
        return grad, _advance(agents, learner, opt_state, length), new_state, metrics


class FullES(AbstractStatelessEstimator):
    """Antithetic ES over whole agent lifetimes (OPEN-style): every meta-step trains one fresh
    pair of agents per pipeline slot for `lifetime` updates with `φ±ε` and scores them with the
    meta-loss (use [`l2orl.LifetimeReturn`][]). The pipeline's persistent agents are unused.
    """

    lifetime: int = eqx.field(static=True)
    std: float = eqx.field(static=True, default=0.01)

    def __check_init__(self):
        if not (isinstance(self.lifetime, int) and self.lifetime > 0):
            raise ValueError(f"lifetime must be a positive int, got {self.lifetime!r}")
        _check_std(self.std)

    def estimate(
        self, meta_params, static, task, meta_loss, agents, state, length, max_length, key
    ):
        k_init, k_eps, k_run = jax.random.split(key, 3)
        n = task.pipeline.n_agents
        optimizer = eqx.combine(meta_params, static)
        fresh = fresh_agents(task, optimizer, jax.random.split(k_init, n))
        eps = _noise(meta_params, k_eps, n, self.std)
        lifetime = jnp.asarray(self.lifetime, jnp.int32)
        lp, lm, _, _, metrics = _antithetic(
            meta_params,
            static,
            task,
            meta_loss,
            fresh,
            fresh,
            eps,
            lifetime,
            self.lifetime,
            jax.random.split(k_run, n),
        )
        grad = _es_gradient(lp - lm, eps, self.std)
        return grad, agents, state, _es_metrics(lp, lm, lifetime, metrics)
