import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._custom_types import CellOutput


class AbstractHead(eqx.Module):
    """The output rule: maps ONE coordinate's cell output (and gradient) to an update direction.

    The optimizer multiplies the head's value by `-step_size`; heads hold no meta-parameters.

    **Attributes:** `n_in`, the number of cell outputs the rule reads.
    """

    n_in: eqx.AbstractVar[int]

    @abc.abstractmethod
    def __call__(self, out: CellOutput, grad: Float[Array, ""]) -> Float[Array, ""]:
        """**Arguments:** `out` of shape `(n_in,)`, the coordinate's gradient `grad` (scalar)."""


class LinearHead(AbstractHead):
    """`o`: the cell's output is the direction itself, with no built-in structure (the plain
    per-coordinate network of the structure ablation)."""

    @property
    def n_in(self) -> int:
        return 1

    def __call__(self, out: Float[Array, " 1"], grad: Float[Array, ""]) -> Float[Array, ""]:
        return out[0]


class SignExpHead(AbstractHead):
    """`sign(g)·exp(o)`: a learned positive magnitude along the gradient (Optim4RL's m)."""

    @property
    def n_in(self) -> int:
        return 1

    def __call__(self, out: Float[Array, " 1"], grad: Float[Array, ""]) -> Float[Array, ""]:
        return jnp.sign(grad) * jnp.exp(out[0])


class ExpHead(AbstractHead):
    """`exp(o)`: a learned positive scalar that ignores `g` (Optim4RL's v)."""

    @property
    def n_in(self) -> int:
        return 1

    def __call__(self, out: Float[Array, " 1"], grad: Float[Array, ""]) -> Float[Array, ""]:
        return jnp.exp(out[0])


class ExpScaleHead(AbstractHead):
    """`exp(o)·g`: a learned positive per-coordinate step size on the gradient (L2LGD2)."""

    @property
    def n_in(self) -> int:
        return 1

    def __call__(self, out: Float[Array, " 1"], grad: Float[Array, ""]) -> Float[Array, ""]:
        return jnp.exp(out[0]) * grad


class GainBiasHead(AbstractHead):
    """`exp(o1)·g + exp(o2)·o3`: a positive gain on `g` plus a sign-free bias (LinearOptim)."""

    @property
    def n_in(self) -> int:
        return 3

    def __call__(self, out: Float[Array, " 3"], grad: Float[Array, ""]) -> Float[Array, ""]:
        return jnp.exp(out[0]) * grad + jnp.exp(out[1]) * out[2]


class DirectionMagnitudeHead(AbstractHead):
    """`d·exp(λ·s)` from outputs `(d, s, …)`: learned_optimization's MLP rule (STAR).

    Extra outputs beyond the first two are ignored (STAR's MLP has four).

    **Arguments:** `exp_mult` `λ` (default 0.001), `n_in` (default 2; at least 2).
    """

    exp_mult: float = eqx.field(static=True, default=0.001)
    n_in: int = eqx.field(static=True, default=2)

    def __check_init__(self):
        if self.n_in < 2:
            raise ValueError(
                f"DirectionMagnitudeHead reads (d, s): n_in must be ≥ 2, got {self.n_in}"
            )

    def __call__(self, out: Float[Array, " n_in"], grad: Float[Array, ""]) -> Float[Array, ""]:
        return out[0] * jnp.exp(self.exp_mult * out[1])
