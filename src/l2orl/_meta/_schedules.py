import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Int

from .._custom_types import PRNGKey


def _check_length(name: str, value: int) -> None:
    if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        raise ValueError(f"{name} must be a positive int, got {value!r}")


class AbstractTruncationSchedule(eqx.Module):
    """How many inner updates `K` each meta-step unrolls (the truncation length).

    The meta-step always scans `max_length` updates and masks those past `K`, so a schedule
    that varies `K` never recompiles.
    """

    min_length: eqx.AbstractVar[int]
    max_length: eqx.AbstractVar[int]

    @abc.abstractmethod
    def sample(self, key: PRNGKey, meta_step: Int[Array, ""]) -> Int[Array, ""]:
        """`K` for this meta-step, an int32 in `[1, max_length]`."""


class ConstantTruncation(AbstractTruncationSchedule):
    """`K` inner updates every meta-step (Optim4RL: `K = 4`)."""

    length: int = eqx.field(static=True)

    def __check_init__(self):
        _check_length("length", self.length)

    @property
    def min_length(self) -> int:
        return self.length

    @property
    def max_length(self) -> int:
        return self.length

    def sample(self, key: PRNGKey, meta_step: Int[Array, ""]) -> Int[Array, ""]:
        return jnp.asarray(self.length, jnp.int32)


class LogUniformTruncation(AbstractTruncationSchedule):
    """`K` drawn log-uniformly from `[min_length, max_length]` each meta-step."""

    min_length: int = eqx.field(static=True)
    max_length: int = eqx.field(static=True)

    def __check_init__(self):
        _check_length("min_length", self.min_length)
        _check_length("max_length", self.max_length)
        if self.min_length > self.max_length:
            raise ValueError(f"min_length {self.min_length} exceeds max_length {self.max_length}")

    def sample(self, key: PRNGKey, meta_step: Int[Array, ""]) -> Int[Array, ""]:
        u = jax.random.uniform(
            key, (), minval=math.log(self.min_length), maxval=math.log(self.max_length + 1)
        )
        return jnp.clip(jnp.floor(jnp.exp(u)), self.min_length, self.max_length).astype(jnp.int32)


class CurriculumTruncation(AbstractTruncationSchedule):
    """`K` growing linearly from `start` to `end` over the first `n_meta_steps` meta-steps."""

    start: int = eqx.field(static=True)
    end: int = eqx.field(static=True)
    n_meta_steps: int = eqx.field(static=True)

    def __check_init__(self):
        for name in ("start", "end", "n_meta_steps"):
            _check_length(name, getattr(self, name))

    @property
    def min_length(self) -> int:
        return min(self.start, self.end)

    @property
    def max_length(self) -> int:
        return max(self.start, self.end)

    def sample(self, key: PRNGKey, meta_step: Int[Array, ""]) -> Int[Array, ""]:
        fraction = jnp.clip(meta_step / self.n_meta_steps, 0.0, 1.0)
        return jnp.round(self.start + fraction * (self.end - self.start)).astype(jnp.int32)
