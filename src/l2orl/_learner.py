import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float, Int, Key, PyTree

from ._context import with_context
from ._custom_types import Params, PRNGKey
from ._utils import tree_select


class UpdateMetrics(eqx.Module):
    """What a learner reports about one update: scalars for one agent (a scan over updates
    stacks them, a vmap over agents adds a leading axis).

    **Attributes:** `loss` (the learner's loss on the update's data), `return_sum` and
    `episodes` (the summed returns and the number of the episodes that ended during the
    update), `extra` (any other named scalars: entropies, KL, episode lengths, …).
    """

    loss: Float[Array, "*batch"]
    return_sum: Float[Array, "*batch"]
    episodes: Float[Array, "*batch"]
    extra: dict[str, Float[Array, "*batch"]] = eqx.field(default_factory=dict)

    def as_dict(self) -> dict[str, Float[Array, "*batch"]]:
        """Every metric by name (`loss`, `return_sum`, `episodes` and `extra`'s)."""
        return {
            "loss": self.loss,
            "return_sum": self.return_sum,
            "episodes": self.episodes,
            **self.extra,
        }


def mean_return(
    return_sum: Float[Array, "*batch"], episodes: Float[Array, "*batch"]
) -> Float[Array, "*batch"]:
    """The mean return of `episodes` episodes whose returns sum to `return_sum` (0 if none)."""
    return return_sum / jnp.maximum(episodes, 1.0)


class AbstractLearner(eqx.Module):
    """The inner learner meta-training trains: any algorithm whose updates go through an
    injected optax transform, so that the same code trains with Adam or a learned optimizer.

    An agent is a learner state (a pytree); `step` is one update. The RL actor-critics
    ([`l2orl.rl.A2C`][], [`l2orl.rl.PPO`][]) subclass
    [`l2orl.rl.AbstractActorCritic`][]; any other learner (a supervised task, a toy problem)
    subclasses this directly. `env` is whatever the learner acts in (a gymnax `Environment`
    for the actor-critics; `None` for a learner without one).
    """

    @abc.abstractmethod
    def init(self, env: Any, key: PRNGKey) -> PyTree:
        """A fresh agent's state."""

    @abc.abstractmethod
    def params(self, state: PyTree) -> Params:
        """The trainable parameters of `state`: what the optax transform sees."""

    @abc.abstractmethod
    def step(
        self,
        env: Any,
        state: PyTree,
        tx: optax.GradientTransformation,
        opt_state: PyTree,
        key: PRNGKey,
    ) -> tuple[PyTree, PyTree, UpdateMetrics]:
        """One update through `tx`. **Returns:** `(state, opt_state, metrics)`."""

    @abc.abstractmethod
    def fresh_loss(self, env: Any, state: PyTree, key: PRNGKey) -> tuple[Float[Array, ""], PyTree]:
        """The learner's loss of `state`'s parameters on fresh data, differentiable in them
        (Optim4RL's meta-loss). **Returns:** `(loss, state)`, the state advanced by whatever
        collecting the data changes (environments, statistics), the parameters unchanged."""

    @abc.abstractmethod
    def env_steps_per_update(self) -> int:
        """Environment steps one `step` (or one `fresh_loss`) takes."""

    @abc.abstractmethod
    def optimizer_updates_per_step(self) -> int:
        """How many times one `step` calls `tx.update` (the meta-gradient by coordinates
        records and replays each call)."""


class AbstractRolloutLearner(AbstractLearner):
    """A learner that learns from rollouts of `n_envs` environments of `rollout_length` steps,
    with advantages it can normalise over its batch: what the meta-losses' scoring options
    ([`l2orl.AgentLoss`][]'s and [`l2orl.FreshRolloutLoss`][]'s `normalize_advantages`, the
    latter's `n_envs`) vary, by `dataclasses.replace` of these fields.
    """

    n_envs: eqx.AbstractVar[int]
    rollout_length: eqx.AbstractVar[int]
    normalize_advantages: eqx.AbstractVar[bool]

    @abc.abstractmethod
    def with_fresh_envs(self, env: Any, state: PyTree, key: PRNGKey) -> PyTree:
        """A state with `state`'s learned parts (parameters, running statistics) and this
        learner's `n_envs` environments freshly reset."""


def scan_updates(
    learner: AbstractLearner,
    env: Any,
    tx: optax.GradientTransformation,
    state: PyTree,
    opt_state: PyTree,
    keys: Key[Array, " n"],
    length: Int[Array, ""] | None = None,
    remat: bool = False,
    progress: tuple[Int[Array, ""] | int, int] | None = None,
) -> tuple[PyTree, PyTree, UpdateMetrics, Bool[Array, " n"]]:
    """One `learner.step` per key, in a `lax.scan`: the inner loop of training and of
    meta-training alike.

    With a traced `length` (≤ the number of keys), the updates past it leave the state
    unchanged (the scan's length stays fixed, so a varying `length` never recompiles). With
    `remat`, each update is rematerialised in the backward pass. With `progress = (age,
    lifetime)` (the agent's updates before the first key, and its lifetime in updates), update
    `i` tells `tx` its [`l2orl.UpdateContext`][] `training_proportion`,
    `min((age + i) / lifetime, 1)`.

    **Returns:** `(state, opt_state, metrics, active)`, the metrics stacked over the updates
    and `active` saying which ran.
    """

    def update(carry, inputs):
        state, opt_state = carry
        index, key = inputs
        step_tx = tx
        if progress is not None:
            age, lifetime = progress
            proportion = jnp.minimum((age + index) / lifetime, 1.0).astype(jnp.float32)
            step_tx = with_context(tx, training_proportion=proportion)
        state, opt_state, metrics = learner.step(env, state, step_tx, opt_state, key)
        return (state, opt_state), metrics

    if remat:
        update = eqx.filter_checkpoint(update)

    def body(carry, inputs):
        new_carry, metrics = update(carry, inputs)
        if length is None:
            return new_carry, (metrics, jnp.ones((), bool))
        active = inputs[0] < length
        return tree_select(active, new_carry, carry), (metrics, active)

    n = keys.shape[0]
    (state, opt_state), (metrics, active) = jax.lax.scan(
        body, (state, opt_state), (jnp.arange(n), keys)
    )
    return state, opt_state, metrics, active
