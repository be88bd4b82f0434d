import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._context import UpdateContext
from .._custom_types import Features, Params, PreprocessorState, Updates
from ._base import AbstractPreprocessor


class Momentum(AbstractPreprocessor):
    """Exponential moving averages of the gradient at several decays (stateful).

    `m_i ← β_i·m_i + (1-β_i)·g` for each decay `β_i`; the features are the updated `m_i`, or
    with `debias` Adam's bias-corrected `m_i / (1 - β_iᵗ)` at update `t`. The state is the
    `m_i` (leaves of shape `(*shape, len(decays))`, float32, zeros at init), with `debias` in
    a pair `(moments, t)` with the update count `t` (an int32 scalar).

    **Arguments:** `decays`, a tuple of floats in `[0, 1)` (default `(0.9, 0.99, 0.999)`);
    `debias` (default False).
    """

    decays: tuple[float, ...] = eqx.field(static=True, default=(0.9, 0.99, 0.999))
    debias: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        if not self.decays or any(not 0.0 <= d < 1.0 for d in self.decays):
            raise ValueError(f"Momentum decays must be non-empty and in [0, 1), got {self.decays}")

    @property
    def n_features(self) -> int:
        return len(self.decays)

    def init(self, params: Params) -> PreprocessorState:
        moments = jax.tree.map(
            lambda p: jnp.zeros((*jnp.shape(p), self.n_features), jnp.float32), params
        )
        return (moments, jnp.zeros((), jnp.int32)) if self.debias else moments

    def __call__(
        self,
        grads: Updates,
        state: PreprocessorState,
        params: Params | None,
        context: UpdateContext | None = None,
    ) -> tuple[Features, PreprocessorState]:
        decays = jnp.asarray(self.decays, jnp.float32)

        def ema(
            g: Float[Array, "*shape"], m: Float[Array, "*shape n"]
        ) -> Float[Array, "*shape n"]:
            return decays * m + (1.0 - decays) * g[..., None].astype(jnp.float32)

        if not self.debias:
            moments = jax.tree.map(ema, grads, state)
            return moments, moments
        moments, count = jax.tree.map(ema, grads, state[0]), state[1] + 1
        correction = 1.0 - decays ** count.astype(jnp.float32)
        return jax.tree.map(lambda m: m / correction, moments), (moments, count)
