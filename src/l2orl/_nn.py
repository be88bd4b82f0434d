"""Small layers shared by the cells, initialised as the reference implementation (flax) does."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._custom_types import PRNGKey


def lecun_normal(key: PRNGKey, shape: tuple[int, ...], fan_in: int) -> Float[Array, "..."]:
    """Truncated normal with variance `1/fan_in` (flax's default kernel init)."""
    # flax's truncated normal is cut at ±2 and rescaled to keep the variance.
    stddev = math.sqrt(1.0 / max(fan_in, 1)) / 0.87962566103423978
    return stddev * jax.random.truncated_normal(key, -2.0, 2.0, shape, jnp.float32)


def orthogonal(key: PRNGKey, n: int) -> Float[Array, "n n"]:
    """A random `n × n` orthogonal matrix (flax's default recurrent-kernel init)."""
    return jax.nn.initializers.orthogonal()(key, (n, n), jnp.float32)


class Linear(eqx.Module):
    """`y = W x + b` for one vector `x`; lecun-normal weights, zero bias."""

    weight: Float[Array, "out_size in_size"]
    bias: Float[Array, " out_size"]

    def __init__(self, in_size: int, out_size: int, *, key: PRNGKey):
        self.weight = lecun_normal(key, (out_size, in_size), in_size)
        self.bias = jnp.zeros((out_size,), jnp.float32)

    def __call__(self, x: Float[Array, " in_size"]) -> Float[Array, " out_size"]:
        return self.weight @ x + self.bias
