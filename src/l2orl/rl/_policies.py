"""Action distributions a network's policy output parameterises, for ONE observation."""

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from .._custom_types import PRNGKey


class AbstractPolicyHead(eqx.Module):
    """An action distribution over raw actions, parameterised by a vector of `n_params`.

    `sample` returns a raw action; `to_env` maps it to what the environment takes. Log-probs
    and entropies are of raw actions. Written for one observation; learners vmap.
    """

    n_params: eqx.AbstractVar[int]

    @abc.abstractmethod
    def sample(self, params: Float[Array, " n_params"], key: PRNGKey) -> Array:
        """A raw action drawn from the distribution."""

    @abc.abstractmethod
    def log_prob(self, params: Float[Array, " n_params"], action: Array) -> Float[Array, ""]:
        """`log π(action)` of a raw action."""

    @abc.abstractmethod
    def entropy(self, params: Float[Array, " n_params"], key: PRNGKey) -> Float[Array, ""]:
        """The entropy (or a one-sample estimate of it where there is no closed form)."""

    @abc.abstractmethod
    def to_env(self, action: Array) -> Array:
        """The environment's action for a raw action."""


class Categorical(AbstractPolicyHead):
    """A categorical distribution over `n_actions` discrete actions, from logits.

    **Arguments:** `n_actions`.
    """

    n_actions: int = eqx.field(static=True)

    @property
    def n_params(self) -> int:
        return self.n_actions

    def sample(self, params: Float[Array, " n"], key: PRNGKey) -> Int[Array, ""]:
        return jax.random.categorical(key, params).astype(jnp.int32)

    def log_prob(self, params: Float[Array, " n"], action: Int[Array, ""]) -> Float[Array, ""]:
        return jax.nn.log_softmax(params)[action]

    def entropy(self, params: Float[Array, " n"], key: PRNGKey) -> Float[Array, ""]:
        log_p = jax.nn.log_softmax(params)
        return -jnp.sum(jnp.exp(log_p) * log_p)

    def to_env(self, action: Int[Array, ""]) -> Int[Array, ""]:
        return action


class TanhGaussian(AbstractPolicyHead):
    """A diagonal Gaussian squashed by `tanh` into `[-1, 1]^action_dim` (brax's PPO policy).

    The parameters are `(mean, pre_scale)`, `std = softplus(pre_scale) + min_std`. Raw actions
    are the pre-tanh Gaussian samples; `log_prob` includes the tanh change of variables, and
    `entropy` is the Gaussian's entropy plus the log-determinant at one sample, as brax.
    `to_env` maps `tanh(x) ∈ [-1, 1]` affinely onto `[low, high]`.

    **Arguments:** `action_dim`, `min_std` (1e-3), `low` (-1.0), `high` (1.0).
    """

    action_dim: int = eqx.field(static=True)
    min_std: float = eqx.field(static=True, default=1e-3)
    low: float = eqx.field(static=True, default=-1.0)
    high: float = eqx.field(static=True, default=1.0)

    @property
    def n_params(self) -> int:
        return 2 * self.action_dim

    def _mean_std(
        self, params: Float[Array, " n"]
    ) -> tuple[Float[Array, " d"], Float[Array, " d"]]:
        mean, pre_scale = jnp.split(params, 2)
        return mean, jax.nn.softplus(pre_scale) + self.min_std

    @staticmethod
    def _log_det_jacobian(x: Float[Array, " d"]) -> Float[Array, ""]:
        # log(1 - tanh(x)²), written stably.
        return jnp.sum(2.0 * (math.log(2.0) - x - jax.nn.softplus(-2.0 * x)))

    def sample(self, params: Float[Array, " n"], key: PRNGKey) -> Float[Array, " d"]:
        mean, std = self._mean_std(params)
        return mean + std * jax.random.normal(key, mean.shape)

    def log_prob(self, params: Float[Array, " n"], action: Float[Array, " d"]) -> Float[Array, ""]:
        mean, std = self._mean_std(params)
        normal = (
            -0.5 * jnp.square((action - mean) / std) - jnp.log(std) - 0.5 * math.log(2 * math.pi)
        )
        return jnp.sum(normal) - self._log_det_jacobian(action)

    def entropy(self, params: Float[Array, " n"], key: PRNGKey) -> Float[Array, ""]:
        _, std = self._mean_std(params)
        normal_entropy = jnp.sum(0.5 + 0.5 * math.log(2 * math.pi) + jnp.log(std))
        return normal_entropy + self._log_det_jacobian(self.sample(params, key))

    def to_env(self, action: Float[Array, " d"]) -> Float[Array, " d"]:
        return self.low + 0.5 * (jnp.tanh(action) + 1.0) * (self.high - self.low)
