import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PyTree

from ._context import TENSOR_ROLES, UpdateContext
from ._custom_types import CellOutput
from ._preprocess._tensor import check_role_source, leaf_roles


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


class AbstractStochasticHead(AbstractHead):
    """An output rule with a random term: besides the cell output and the gradient, it reads
    one noise value `ξ` per coordinate.

    [`l2orl.Branch`][] draws every coordinate's `ξ` with `noise` before the cell runs and
    appends it to the per-coordinate inputs as their LAST row (the cell reads the rows before
    it), so a replay of those inputs (the sampled coordinate route of TBPTT) replays the noise
    exactly. The head is then called as `head(out, grad, ξ)`; `head(out, grad)` is its rule
    at `ξ = 0`.
    """

    @abc.abstractmethod
    def noise(self, grads: PyTree, context: UpdateContext) -> Float[Array, " n"]:
        """`ξ` for every coordinate of `grads` (float32, raveled in leaf order), from the
        update's `context` (its `key`; no key, no noise)."""

    @abc.abstractmethod
    def __call__(
        self, out: CellOutput, grad: Float[Array, ""], noise: Float[Array, ""] = 0.0
    ) -> Float[Array, ""]:
        """**Arguments:** `out` of shape `(n_in,)`, the coordinate's gradient `grad` and its
        `noise` `ξ` (scalars)."""


class NoisyHead(AbstractStochasticHead):
    """`head(o[:-1], g) + o[-1]·ξ`: a head plus a learned Gaussian perturbation, OPEN's
    stochastic update. The last cell output is the coordinate's noise scale `s`; `ξ ~ N(0, 1)`
    is drawn per coordinate from the update context's `key` (see [`l2orl.UpdateContext`][]),
    and is 0 on tensors outside `roles` and when the update has no key. With `s = 0` the
    update is the head's own, exactly; with a key it is reproducible from the key.

    The tensors' roles are the context's `roles`, as the network labels them (every tensor
    `"shared"` without them, so the default perturbs nothing there), or with
    `role_source="paths"` guessed from the parameter paths, as [`l2orl.TensorFeatures`][]
    reads them.

    **Arguments:** `head` (the deterministic rule), `roles` (the tensor roles perturbed:
    `"actor"`, `"critic"`, `"shared"`; default `("actor",)`, as OPEN), `role_source`
    (`"context"`, default, or `"paths"`).
    """

    head: AbstractHead
    roles: tuple[str, ...] = eqx.field(static=True, default=("actor",))
    role_source: str = eqx.field(static=True, default="context")

    def __check_init__(self):
        unknown = [role for role in self.roles if role not in TENSOR_ROLES]
        if unknown or not self.roles:
            raise ValueError(
                f"NoisyHead perturbs one or more of the roles {TENSOR_ROLES}, got "
                f"roles={self.roles!r}"
            )
        check_role_source("NoisyHead", self.role_source)

    @property
    def n_in(self) -> int:
        return self.head.n_in + 1

    def noise(self, grads: PyTree, context: UpdateContext) -> Float[Array, " n"]:
        """`ξ` for every coordinate of `grads` (raveled in leaf order): standard normal on the
        leaves of the perturbed roles, 0 elsewhere, all 0 without the context's `key`."""
        leaves = jax.tree.leaves(grads)
        roles = leaf_roles(grads, context, self.role_source)
        mask = [
            np.full(int(np.prod(jnp.shape(g))), role in self.roles)
            for g, role in zip(leaves, roles, strict=True)
        ]
        mask = jnp.asarray(np.concatenate(mask) if mask else np.zeros(0, bool))
        if context.key is None:
            return jnp.zeros(mask.shape, jnp.float32)
        return jnp.where(mask, jax.random.normal(context.key, mask.shape, jnp.float32), 0.0)

    def __call__(
        self, out: Float[Array, " n_in"], grad: Float[Array, ""], noise: Float[Array, ""] = 0.0
    ) -> Float[Array, ""]:
        return self.head(out[:-1], grad) + out[-1] * noise
