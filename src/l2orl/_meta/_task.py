from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Int, Key, PyTree

from .._custom_types import PRNGKey
from .._lopt import AbstractLearnedOptimizer
from ._pipeline import Pipeline


class MetaTask(eqx.Module):
    """One meta-training task: an environment, its learner, its agents' pipeline.

    The agents use `optax.chain(optax.clip(grad_clip), optimizer.as_optax(),
    optax.scale(update_scale))` (each part only when set): `grad_clip` is the reference's
    element-wise clip of agent gradients, `update_scale` its per-task step size multiplier.

    **Arguments:** `name`, `learner` (an `l2orl.rl` learner; one agent = one learner state),
    `env`, `pipeline`, `grad_clip` (None), `update_scale` (1.0).
    """

    name: str = eqx.field(static=True)
    learner: Any
    env: Any = eqx.field(static=True)
    pipeline: Pipeline
    grad_clip: float | None = eqx.field(static=True, default=None)
    update_scale: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be positive or None, got {self.grad_clip!r}")
        if not self.update_scale > 0:
            raise ValueError(f"update_scale must be positive, got {self.update_scale!r}")

    def transform(
        self, optimizer: AbstractLearnedOptimizer
    ) -> optax.GradientTransformationExtraArgs:
        """The optax transform this task's agents train with."""
        parts = [optimizer.as_optax()]
        if self.grad_clip is not None:
            parts.insert(0, optax.clip(self.grad_clip))
        if self.update_scale != 1.0:
            parts.append(optax.scale(self.update_scale))
        return parts[0] if len(parts) == 1 else optax.chain(*parts)

    def env_steps_per_update(self) -> int:
        """Environment steps one agent takes per inner update (one rollout)."""
        return self.learner.n_envs * self.learner.rollout_length


class AgentsState(eqx.Module):
    """A task's agents (leading axis `n_agents` on every array).

    **Attributes:** `learner` (batched learner states), `opt_state` (batched optimizer states),
    `offsets` (the pipeline's reset offsets), `age` (inner updates since each agent's reset).
    """

    learner: PyTree
    opt_state: PyTree
    offsets: Int[Array, " n_agents"]
    age: Int[Array, " n_agents"]


def agent_devices(n_agents: int) -> int:
    """How many local devices a task's `n_agents` are sharded over: all of them when there are
    several and they divide `n_agents`, else 1."""
    count = len(jax.local_devices())
    return count if count > 1 and n_agents % count == 0 else 1


def fresh_agents(
    task: MetaTask, optimizer: AbstractLearnedOptimizer, keys: Key[Array, " n"]
) -> tuple[PyTree, PyTree]:
    """Newly initialised learner and optimizer states, one per key."""
    tx = task.transform(optimizer)
    learner = jax.vmap(task.learner.init, in_axes=(None, 0))(task.env, keys)
    return learner, jax.vmap(tx.init)(learner.params)


def tree_select(mask: Bool[Array, "..."], on_true: PyTree, on_false: PyTree) -> PyTree:
    """Per-leaf `where`, broadcasting `mask` over each leaf's trailing axes."""

    def select(a, b):
        m = jnp.reshape(mask, mask.shape + (1,) * (jnp.ndim(a) - mask.ndim))
        return jnp.where(m, a, b)

    return jax.tree.map(select, on_true, on_false)


def reset_agents(
    task: MetaTask,
    optimizer: AbstractLearnedOptimizer,
    agents: AgentsState,
    mask: Bool[Array, " n"],
    key: PRNGKey,
) -> AgentsState:
    """Replace the agents in `mask` by fresh ones; fresh agents are built only on meta-steps
    where some agent resets."""

    def reset(agents):
        learner, opt_state = fresh_agents(
            task, optimizer, jax.random.split(key, task.pipeline.n_agents)
        )
        return AgentsState(
            tree_select(mask, learner, agents.learner),
            tree_select(mask, opt_state, agents.opt_state),
            agents.offsets,
            jnp.where(mask, 0, agents.age),
        )

    return jax.lax.cond(jnp.any(mask), reset, lambda a: a, agents)
