from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Int, Key, PyTree

from .._checkpoint import describe
from .._learner import AbstractLearner
from .._lopt import AbstractLearnedOptimizer
from .._utils import check_positive

OPTIMIZER_SLOT = "optimizer"
"""The name of the learned optimizer's place in a task's transform (an `optax.named_chain`):
its state is `opt_state[OPTIMIZER_SLOT]`."""


class MetaTask(eqx.Module):
    """One meta-training task: a learner, the environment it acts in, and the transform its
    agents train with.

    The agents use `optax.named_chain(("clip", optax.clip(grad_clip)), ("optimizer",
    optimizer.as_optax()), ("scale", optax.scale(update_scale)))`, each part only when set:
    `grad_clip` is the reference's element-wise clip of agent gradients, `update_scale` its
    per-task step size multiplier. The learned optimizer's state is always under the name
    [`l2orl.OPTIMIZER_SLOT`][].

    **Arguments:** `name`, `learner` (an [`l2orl.AbstractLearner`][]; one agent = one learner
    state), `env` (what the learner acts in), `grad_clip` (None), `update_scale` (1.0).
    """

    name: str = eqx.field(static=True)
    learner: AbstractLearner
    env: Any = eqx.field(static=True)
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
        `optimizer.as_optax()` with the same update) takes the optimizer's slot if given."""
        parts = [(OPTIMIZER_SLOT, optimizer.as_optax() if core is None else core)]
        if self.grad_clip is not None:
            parts.insert(0, ("clip", optax.clip(self.grad_clip)))
        if self.update_scale != 1.0:
            parts.append(("scale", optax.scale(self.update_scale)))
        return optax.named_chain(*parts)

    def fresh_agents(
        self, optimizer: AbstractLearnedOptimizer, keys: Key[Array, " n"]
    ) -> "AgentsState":
        """Newly initialised agents, one per key (leading axis `n`), all of age 0."""
        tx = self.transform(optimizer)
        learner = jax.vmap(self.learner.init, in_axes=(None, 0))(self.env, keys)
        opt_state = jax.vmap(lambda s: tx.init(self.learner.params(s)))(learner)
        return AgentsState(learner, opt_state, jnp.zeros(keys.shape[:1], jnp.int32))

    def config(self) -> dict:
        """The task as a run's `config.json` records it: name, env, the module tree of its
        learner, and its transform's settings."""
        return {
            "name": self.name,
            "env": getattr(self.env, "name", type(self.env).__name__),
            "learner": describe(self.learner),
            "grad_clip": self.grad_clip,
            "update_scale": self.update_scale,
        }


def check_tasks(tasks: tuple[MetaTask, ...], owner: str) -> None:
    """Raise a `ValueError` unless `tasks` is a non-empty tuple of uniquely named tasks."""
    if not tasks:
        raise ValueError(f"{owner} needs at least one task")
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"task names must be unique, got {names}")


class AgentsState(eqx.Module):
    """Agents of one task: learner states, their transform's states and their ages (a
    leading agent axis on every array, or none for one agent).

    **Attributes:** `learner`, `opt_state` (states of [`l2orl.MetaTask.transform`][]; the
    learned optimizer's own is `opt_state[l2orl.OPTIMIZER_SLOT]`), `age` (inner updates since
    each agent's reset).
    """

    learner: PyTree
    opt_state: PyTree
    age: Int[Array, "*agents"]
