import abc
import dataclasses
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PyTree

from .._custom_types import PRNGKey
from .._learner import AbstractLearner, AbstractRolloutLearner, UpdateMetrics, mean_return
from .._utils import check_fraction, check_positive_int


class AbstractMetaLoss(eqx.Module):
    """What an unroll of inner updates is scored by (lower is better).

    The class attribute `differentiable` tells the trainer whether the loss carries gradient
    to the meta-parameters (estimators that differentiate need it; ES estimators work with any
    loss), and `env_steps` how many environment steps it takes beyond the unroll's own
    (counted in the logged env-steps).
    """

    differentiable: eqx.AbstractClassVar[bool]

    @abc.abstractmethod
    def __call__(
        self,
        learner: AbstractLearner,
        env: Any,
        state: PyTree,
        unroll: UpdateMetrics,
        active: Bool[Array, " K"],
        key: PRNGKey,
    ) -> tuple[Float[Array, ""], PyTree]:
        """**Arguments:** the agent's learner, env and state after the unroll, the unroll's
        per-update metrics (leading axis `K_max`) and which updates ran (`active`).

        **Returns:** `(loss, state)`.
        """

    @abc.abstractmethod
    def env_steps(self, learner: AbstractLearner) -> int:
        """The environment steps one call takes beyond the unroll's (logged in meta-training's
        env-steps), for an agent of `learner`."""


def _scoring(learner: AbstractLearner, normalize_advantages: bool) -> AbstractLearner:
    """The learner whose loss scores an unroll: with `normalize_advantages`, its advantages
    normalised over the meta-loss's batch."""
    if not normalize_advantages:
        return learner
    if not isinstance(learner, AbstractRolloutLearner):
        raise ValueError(
            "normalize_advantages needs an l2orl.AbstractRolloutLearner (l2orl.rl.A2C, "
            f"l2orl.rl.PPO), got {type(learner).__name__}"
        )
    return dataclasses.replace(learner, normalize_advantages=True)


class AgentLoss(AbstractMetaLoss):
    """Optim4RL's meta-loss: the agent's own loss after the unroll, on a fresh rollout.

    The rollout advances the agent's environments, as in the reference.

    **Arguments:** `normalize_advantages` (False: the agent's loss as it trains; True: its
    advantages normalised over the rollout, which makes the meta-loss's scale independent of
    the task's rewards; PPO's loss already does).
    """

    normalize_advantages: bool = eqx.field(static=True, default=False)
    differentiable = True

    def env_steps(self, learner) -> int:
        """One of the agent's own rollouts."""
        return learner.env_steps_per_update()

    def __call__(self, learner, env, state, unroll, active, key):
        return _scoring(learner, self.normalize_advantages).fresh_loss(env, state, key)


class FreshRolloutLoss(AbstractMetaLoss):
    """The agent's own loss after the unroll, on a rollout of `n_envs` freshly reset
    environments (the agent's own environments are left as they were).

    A wider sample than [`l2orl.AgentLoss`][]'s single environment for the same network: it
    costs the agent network's forward and backward pass on `n_envs × T` transitions, not the
    optimizer's. Needs an [`l2orl.AbstractRolloutLearner`][] (its `n_envs` is replaced).

    **Arguments:** `n_envs` (default 64), `normalize_advantages` (as
    [`l2orl.AgentLoss`][]'s).
    """

    n_envs: int = eqx.field(static=True, default=64)
    normalize_advantages: bool = eqx.field(static=True, default=False)
    differentiable = True

    def __check_init__(self):
        check_positive_int("FreshRolloutLoss n_envs", self.n_envs)

    def env_steps(self, learner) -> int:
        """`n_envs` × the learner's rollout length."""
        return self.n_envs * learner.rollout_length

    def __call__(self, learner, env, state, unroll, active, key):
        if not isinstance(learner, AbstractRolloutLearner):
            raise ValueError(
                "FreshRolloutLoss needs an l2orl.AbstractRolloutLearner (l2orl.rl.A2C, "
                f"l2orl.rl.PPO), got {type(learner).__name__}"
            )
        wide = dataclasses.replace(
            _scoring(learner, self.normalize_advantages), n_envs=self.n_envs
        )
        k_reset, k_loss = jax.random.split(key)
        loss, _ = wide.fresh_loss(env, wide.with_fresh_envs(env, state, k_reset), k_loss)
        return loss, state


def _negative_mean_return(unroll: UpdateMetrics, weights: Float[Array, " K"]) -> Float[Array, ""]:
    return -mean_return(jnp.sum(weights * unroll.return_sum), jnp.sum(weights * unroll.episodes))


class UnrollReturn(AbstractMetaLoss):
    """The negative mean return of the episodes that ended during the unroll (0 if none)."""

    differentiable = False

    def env_steps(self, learner) -> int:
        """None: it reads the unroll's own episodes."""
        return 0

    def __call__(self, learner, env, state, unroll, active, key):
        return _negative_mean_return(unroll, active.astype(jnp.float32)), state


class LifetimeReturn(AbstractMetaLoss):
    """The negative mean return over the last `final_fraction` of an unroll: with
    [`l2orl.LifetimeTraining`][], the final return of a whole agent lifetime (OPEN's objective)."""

    final_fraction: float = eqx.field(static=True, default=0.1)
    differentiable = False

    def env_steps(self, learner) -> int:
        """None: it reads the unroll's own episodes."""
        return 0

    def __check_init__(self):
        check_fraction("final_fraction", self.final_fraction)

    def __call__(self, learner, env, state, unroll, active, key):
        n_active = jnp.sum(active)
        index = jnp.arange(active.shape[0])
        start = n_active - jnp.maximum(1, jnp.round(self.final_fraction * n_active)).astype(
            jnp.int32
        )
        weights = (active & (index >= start)).astype(jnp.float32)
        return _negative_mean_return(unroll, weights), state


META_LOSSES: dict[str, type[AbstractMetaLoss]] = {
    "agent": AgentLoss,
    "fresh_rollout": FreshRolloutLoss,
    "unroll_return": UnrollReturn,
    "lifetime_return": LifetimeReturn,
}
"""The meta-losses by the name a `MetaTrainConfig` gives them."""
