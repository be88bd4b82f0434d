import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Int

from .._custom_types import PRNGKey
from .._utils import check_positive_int


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

    @classmethod
    @abc.abstractmethod
    def from_range(
        cls, min_length: int, max_length: int, n_meta_steps: int
    ) -> "AbstractTruncationSchedule":
        """The schedule of this kind for `K` in `[min_length, max_length]` over a run of
        `n_meta_steps` (how a `MetaTrainConfig` builds it)."""


class ConstantTruncation(AbstractTruncationSchedule):
    """`K` inner updates every meta-step (Optim4RL: `K = 4`)."""

    length: int = eqx.field(static=True)

    def __check_init__(self):
        check_positive_int("length", self.length)

    @property
    def min_length(self) -> int:
        return self.length

    @property
    def max_length(self) -> int:
        return self.length

    def sample(self, key: PRNGKey, meta_step: Int[Array, ""]) -> Int[Array, ""]:
        return jnp.asarray(self.length, jnp.int32)

    @classmethod
    def from_range(cls, min_length: int, max_length: int, n_meta_steps: int):
        """`K = max_length` always."""
        return cls(max_length)


class LogUniformTruncation(AbstractTruncationSchedule):
    """`K` drawn log-uniformly from `[min_length, max_length]` each meta-step."""

    min_length: int = eqx.field(static=True)
    max_length: int = eqx.field(static=True)

    def __check_init__(self):
        check_positive_int("min_length", self.min_length)
        check_positive_int("max_length", self.max_length)
        if self.min_length > self.max_length:
            raise ValueError(f"min_length {self.min_length} exceeds max_length {self.max_length}")

    def sample(self, key: PRNGKey, meta_step: Int[Array, ""]) -> Int[Array, ""]:
        u = jax.random.uniform(
            key, (), minval=math.log(self.min_length), maxval=math.log(self.max_length + 1)
        )
        return jnp.clip(jnp.floor(jnp.exp(u)), self.min_length, self.max_length).astype(jnp.int32)

    @classmethod
    def from_range(cls, min_length: int, max_length: int, n_meta_steps: int):
        return cls(min_length, max_length)


class CurriculumTruncation(AbstractTruncationSchedule):
    """`K` growing linearly from `start` to `end` over the first `n_meta_steps` meta-steps."""

    start: int = eqx.field(static=True)
    end: int = eqx.field(static=True)
    n_meta_steps: int = eqx.field(static=True)

    def __check_init__(self):
        for name in ("start", "end", "n_meta_steps"):
            check_positive_int(name, getattr(self, name))

    @property
    def min_length(self) -> int:
        return min(self.start, self.end)

    @property
    def max_length(self) -> int:
        return max(self.start, self.end)

    def sample(self, key: PRNGKey, meta_step: Int[Array, ""]) -> Int[Array, ""]:
        fraction = jnp.clip(meta_step / self.n_meta_steps, 0.0, 1.0)
        return jnp.round(self.start + fraction * (self.end - self.start)).astype(jnp.int32)

    @classmethod
    def from_range(cls, min_length: int, max_length: int, n_meta_steps: int):
        """From `min_length` to `max_length` over the whole run."""
        return cls(min_length, max_length, n_meta_steps)


SCHEDULES: dict[str, type[AbstractTruncationSchedule]] = {
    "constant": ConstantTruncation,
    "log_uniform": LogUniformTruncation,
    "curriculum": CurriculumTruncation,
}
"""The truncation schedules by the name a `MetaTrainConfig` gives them."""
