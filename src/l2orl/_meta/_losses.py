import abc
from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PyTree

from .._custom_types import Metrics, PRNGKey


class AbstractMetaLoss(eqx.Module):
    """What an unroll of inner updates is scored by (lower is better).

    `differentiable` says whether the loss carries gradient to the meta-parameters (needed by
    [`l2orl.TruncatedBPTT`][]); ES estimators work with any loss.
    """

    differentiable: eqx.AbstractClassVar[bool]

    @abc.abstractmethod
    def __call__(
        self,
        learner: Any,
        env: Any,
        state: PyTree,
        unroll: Metrics,
        active: Bool[Array, " K"],
        key: PRNGKey,
    ) -> tuple[Float[Array, ""], PyTree]:
        """**Arguments:** the agent's learner, env and state after the unroll, the unroll's
        per-update metrics (leading axis `K_max`) and which updates ran (`active`).

        **Returns:** `(loss, state)`.
        """


class AgentLoss(AbstractMetaLoss):
    """Optim4RL's meta-loss: the agent's own loss after the unroll, on a fresh rollout.

    The rollout advances the agent's environments, as in the reference.
    """

    differentiable = True

    def __call__(self, learner, env, state, unroll, active, key):
        return learner.fresh_loss(env, state, key)


def _negative_mean_return(unroll: Metrics, weights: Float[Array, " K"]) -> Float[Array, ""]:
    episodes = jnp.sum(weights * unroll["episodes"])
    return -jnp.sum(weights * unroll["return_sum"]) / jnp.maximum(episodes, 1.0)


class UnrollReturn(AbstractMetaLoss):
    """The negative mean return of the episodes that ended during the unroll (0 if none)."""

    differentiable = False

    def __call__(self, learner, env, state, unroll, active, key):
        return _negative_mean_return(unroll, active.astype(jnp.float32)), state


class LifetimeReturn(AbstractMetaLoss):
    """The negative mean return over the last `final_fraction` of an unroll: with
    [`l2orl.FullES`][], the final return of a whole agent lifetime (OPEN's objective)."""

    final_fraction: float = eqx.field(static=True, default=0.1)
    differentiable = False

    def __check_init__(self):
        if not 0 < self.final_fraction <= 1:
            raise ValueError(f"final_fraction must be in (0, 1], got {self.final_fraction!r}")

    def __call__(self, learner, env, state, unroll, active, key):
        n_active = jnp.sum(active)
        index = jnp.arange(active.shape[0])
        start = n_active - jnp.maximum(1, jnp.round(self.final_fraction * n_active)).astype(
            jnp.int32
        )
        weights = (active & (index >= start)).astype(jnp.float32)
        return _negative_mean_return(unroll, weights), state
