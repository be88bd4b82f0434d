from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Int, Key, PyTree

from .._checkpoint import describe
from .._custom_types import PRNGKey
from .._learner import AbstractLearner
from .._lopt import AbstractLearnedOptimizer
from .._utils import check_positive, tree_select
from ._pipeline import Pipeline


class MetaTask(eqx.Module):
    """One meta-training task: an environment, its learner, its agents' pipeline.

    The agents use `optax.chain(optax.clip(grad_clip), optimizer.as_optax(),
    optax.scale(update_scale))` (each part only when set): `grad_clip` is the reference's
    element-wise clip of agent gradients, `update_scale` its per-task step size multiplier.

    **Arguments:** `name`, `learner` (an [`l2orl.AbstractLearner`][]; one agent = one learner
    state), `env` (what the learner acts in), `pipeline`, `grad_clip` (None), `update_scale`
    (1.0).
    """

    name: str = eqx.field(static=True)
    learner: AbstractLearner
    env: Any = eqx.field(static=True)
    pipeline: Pipeline
    grad_clip: float | None = eqx.field(static=True, default=None)
    update_scale: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        if not isinstance(self.learner, AbstractLearner):
            raise TypeError(
                f"task {self.name!r}: learner must be an l2orl.AbstractLearner, got "
                f"{type(self.learner).__name__}"
            )
        check_positive("grad_clip", self.grad_clip, optional=True)
        check_positive("update_scale", self.update_scale)

    def transform(
        self,
        optimizer: AbstractLearnedOptimizer,
        core: optax.GradientTransformationExtraArgs | None = None,
    ) -> optax.GradientTransformationExtraArgs:
        """The optax transform this task's agents train with; `core` (an instrumented copy of
        `optimizer.as_optax()` with the same update) takes the optimizer's place if given."""
        parts = [optimizer.as_optax() if core is None else core]
        if self.grad_clip is not None:
            parts.insert(0, optax.clip(self.grad_clip))
        if self.update_scale != 1.0:
            parts.append(optax.scale(self.update_scale))
        return parts[0] if len(parts) == 1 else optax.chain(*parts)

    def _chained(self) -> bool:
        return self.grad_clip is not None or self.update_scale != 1.0

    def optimizer_state(self, opt_state: PyTree) -> PyTree:
        """The learned optimizer's own state inside a state of `transform`."""
        return opt_state[int(self.grad_clip is not None)] if self._chained() else opt_state

    def with_optimizer_state(self, opt_state: PyTree, inner: PyTree) -> PyTree:
        """A state of `transform` with the learned optimizer's own state replaced by `inner`."""
        if not self._chained():
            return inner
        parts = list(opt_state)
        parts[int(self.grad_clip is not None)] = inner
        return tuple(parts)

    def fresh_agents(
        self, optimizer: AbstractLearnedOptimizer, keys: Key[Array, " n"]
    ) -> tuple[PyTree, PyTree]:
        """Newly initialised learner and optimizer states, one per key (leading axis `n`)."""
        tx = self.transform(optimizer)
        learner = jax.vmap(self.learner.init, in_axes=(None, 0))(self.env, keys)
        return learner, jax.vmap(lambda s: tx.init(self.learner.params(s)))(learner)

    def env_steps_per_update(self) -> int:
        """Environment steps one agent takes per inner update (one rollout)."""
        return self.learner.env_steps_per_update()

    def config(self) -> dict:
        """The task as a run's `config.json` records it: name, env, and the module trees of
        its learner and pipeline, with its settings."""
        return {
            "name": self.name,
            "env": getattr(self.env, "name", type(self.env).__name__),
            "learner": describe(self.learner),
            "pipeline": describe(self.pipeline),
            "grad_clip": self.grad_clip,
            "update_scale": self.update_scale,
        }


class AgentsState(eqx.Module):
    """A task's agents (leading axis `n_agents` on every array).

    **Attributes:** `learner` (batched learner states), `opt_state` (batched optimizer states),
    `offsets` (the pipeline's reset offsets), `age` (inner updates since each agent's reset).
    """

    learner: PyTree
    opt_state: PyTree
    offsets: Int[Array, " n_agents"]
    age: Int[Array, " n_agents"]


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
        learner, opt_state = task.fresh_agents(
            optimizer, jax.random.split(key, task.pipeline.n_agents)
        )
        return AgentsState(
            tree_select(mask, learner, agents.learner),
            tree_select(mask, opt_state, agents.opt_state),
            agents.offsets,
            jnp.where(mask, 0, agents.age),
        )

    return jax.lax.cond(jnp.any(mask), reset, lambda a: a, agents)
