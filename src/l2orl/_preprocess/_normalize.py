import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._context import UpdateContext
from .._custom_types import Features, Params, PreprocessorState, Updates
from .._utils import check_positive
from ._base import AbstractPreprocessor
from ._elementwise import Identity


class RMSNormalize(AbstractPreprocessor):
    """Per-tensor second-moment normalisation of another preprocessor's features.

    For each parameter leaf and each feature channel, `x ← x·rsqrt(eps + mean(x²))`, the mean
    taken over all coordinates of that leaf (learned_optimization's feature normalisation).

    **Arguments:** `inner` (default `Identity()`), `eps` (default 1e-5).
    """

    inner: AbstractPreprocessor = eqx.field(default_factory=Identity)
    eps: float = eqx.field(static=True, default=1e-5)

    def __check_init__(self):
        check_positive("RMSNormalize eps", self.eps)

    @property
    def n_features(self) -> int:
        return self.inner.n_features

    def init(self, params: Params) -> PreprocessorState:
        return self.inner.init(params)

    def __call__(
        self,
        grads: Updates,
        state: PreprocessorState,
        params: Params | None,
        context: UpdateContext | None = None,
    ) -> tuple[Features, PreprocessorState]:
        features, state = self.inner(grads, state, params, context)

        def normalise(x: Float[Array, "*shape n"]) -> Float[Array, "*shape n"]:
            axes = tuple(range(x.ndim - 1))
            return x * jax.lax.rsqrt(self.eps + jnp.mean(jnp.square(x), axis=axes, keepdims=True))

        return jax.tree.map(normalise, features), state
