import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._utils import check_positive
from ._base import AbstractElementwisePreprocessor


class Identity(AbstractElementwisePreprocessor):
    """The raw gradient as one feature: `x = g`."""

    @property
    def n_features(self) -> int:
        return 1

    def features(
        self, grad: Float[Array, "*shape"], param: Float[Array, "*shape"] | None
    ) -> Float[Array, "*shape 1"]:
        return grad[..., None]


class Square(AbstractElementwisePreprocessor):
    """The squared gradient as one feature: `x = g²` (Optim4RL's v-branch input)."""

    @property
    def n_features(self) -> int:
        return 1

    def features(
        self, grad: Float[Array, "*shape"], param: Float[Array, "*shape"] | None
    ) -> Float[Array, "*shape 1"]:
        return jnp.square(grad)[..., None]


class Clip(AbstractElementwisePreprocessor):
    """The gradient clipped element-wise to `[-bound, bound]`, as one feature.

    **Arguments:** `bound`, a positive float.
    """

    bound: float = eqx.field(static=True)

    @property
    def n_features(self) -> int:
        return 1

    def __check_init__(self):
        check_positive("Clip bound", self.bound)

    def features(
        self, grad: Float[Array, "*shape"], param: Float[Array, "*shape"] | None
    ) -> Float[Array, "*shape 1"]:
        return jnp.clip(grad, -self.bound, self.bound)[..., None]


class SignLog(AbstractElementwisePreprocessor):
    """The log-magnitude/sign encoding of Andrychowicz et al. (2016), two features.

    With `ℓ = log(|g| + eps) / p`:

    - `(ℓ, sign(g))` if `ℓ ≥ -1`,
    - `(-1, exp(p)·g)` otherwise.

    **Arguments:** `p` (default 10, as L2LGD2), `eps` (default 1e-8).
    """

    p: float = eqx.field(static=True, default=10.0)
    eps: float = eqx.field(static=True, default=1e-8)

    @property
    def n_features(self) -> int:
        return 2

    def __check_init__(self):
        check_positive("SignLog p", self.p)

    def features(
        self, grad: Float[Array, "*shape"], param: Float[Array, "*shape"] | None
    ) -> Float[Array, "*shape 2"]:
        log_mag = jnp.log(jnp.abs(grad) + self.eps) / self.p
        large = log_mag >= -1.0
        first = jnp.where(large, log_mag, -1.0)
        second = jnp.where(large, jnp.sign(grad), jnp.exp(self.p) * grad)
        return jnp.stack([first, second], axis=-1)


class ParamValue(AbstractElementwisePreprocessor):
    """The current parameter value as one feature: `x = θ`."""

    @property
    def n_features(self) -> int:
        return 1

    def features(
        self, grad: Float[Array, "*shape"], param: Float[Array, "*shape"] | None
    ) -> Float[Array, "*shape 1"]:
        if param is None:
            raise ValueError("ParamValue needs the parameters: call update(grads, state, params)")
        return jnp.asarray(param, grad.dtype)[..., None]
