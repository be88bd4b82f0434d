import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import keystr
from jaxtyping import Array, Float, PyTree

from ._custom_types import CellOutput, PRNGKey
from ._preprocess._tensor import TENSOR_ROLES, tensor_roles


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


class NoisyHead(AbstractHead):
    """`head(o[:-1], g) + o[-1]·ξ`: a head plus a learned Gaussian perturbation, OPEN's
    stochastic update. The last cell output is the coordinate's noise scale `s`; `ξ ~ N(0, 1)`
    is drawn per coordinate from the update context's `key` (see [`l2orl.UpdateContext`][]),
    and is 0 on parameter leaves outside `roles` and when the update has no key. With `s = 0`
    the update is the head's own, exactly; with a key it is reproducible from the key.

    **Arguments:** `head` (the deterministic rule), `roles` (the tensor roles perturbed, as
    [`l2orl.TensorFeatures`][] reads them from the parameter paths: `"actor"`, `"critic"`,
    `"shared"`; default `("actor",)`, as OPEN).
    """

    head: AbstractHead
    roles: tuple[str, ...] = eqx.field(static=True, default=("actor",))

    def __check_init__(self):
        unknown = [role for role in self.roles if role not in TENSOR_ROLES]
        if unknown or not self.roles:
            raise ValueError(
                f"NoisyHead perturbs one or more of the roles {TENSOR_ROLES}, got "
                f"roles={self.roles!r}"
            )

    @property
    def n_in(self) -> int:
        return self.head.n_in + 1

    def noise(self, grads: PyTree, key: PRNGKey | None) -> Float[Array, " n"]:
        """`ξ` for every coordinate of `grads` (raveled in leaf order): standard normal on the
        leaves of the perturbed roles, 0 elsewhere, all 0 without a `key`."""
        flat = jax.tree_util.tree_flatten_with_path(grads)[0]
        roles = tensor_roles([keystr(path) for path, _ in flat])
        mask = [
            np.full(int(np.prod(jnp.shape(g))), role in self.roles)
            for (_, g), role in zip(flat, roles, strict=True)
        ]
        mask = jnp.asarray(np.concatenate(mask) if mask else np.zeros(0, bool))
        if key is None:
            return jnp.zeros(mask.shape, jnp.float32)
        return jnp.where(mask, jax.random.normal(key, mask.shape, jnp.float32), 0.0)

    def __call__(
        self, out: Float[Array, " n_in"], grad: Float[Array, ""], noise: Float[Array, ""] = 0.0
    ) -> Float[Array, ""]:
        return self.head(out[:-1], grad) + out[-1] * noise
