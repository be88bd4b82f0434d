from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from .._context import UpdateContext
from .._custom_types import Features, Params, Updates
from .._utils import check_positive
from ._base import AbstractPreprocessor
from ._elementwise import Identity


class ScaleFreeState(NamedTuple):
    """[`l2orl.ScaleFree`][]'s state: the inner preprocessor's, the running mean of `g²` per
    coordinate (leaves shaped like the parameters) and the number of updates seen. A
    NamedTuple of arrays, as optax's states: flax serialization and orbax save it."""

    inner: Any
    second_moment: Params
    count: Int[Array, ""]


class ScaleFree(AbstractPreprocessor):
    """Per-coordinate normalisation by the gradient's running RMS: another preprocessor's
    features, of degree `degree` in the gradient, divided by `(v̂ + ε)^(degree/2)`.

    `v ← decay·v + (1-decay)·g²` per coordinate, `v̂ = v / (1 - decayᵗ)` (bias-corrected, as
    Adam's). With `Concatenate(Identity(), Momentum(...))` and `degree=1` the features are
    `g/√v̂` and Adam's `m/√v̂`; with `Square()` and `degree=2`, `g²/v̂`. Multiplying every
    gradient by a constant leaves them unchanged (up to `ε`), so a cell reading them responds
    the same at every gradient scale.

    **Arguments:** `inner` (default `Identity()`), `degree` (1), `decay` (0.999), `eps`
    (1e-16, added to `v̂`).
    """

    inner: AbstractPreprocessor = eqx.field(default_factory=Identity)
    degree: int = eqx.field(static=True, default=1)
    decay: float = eqx.field(static=True, default=0.999)
    eps: float = eqx.field(static=True, default=1e-16)

    def __check_init__(self):
        if self.degree not in (1, 2):
            raise ValueError(f"ScaleFree degree must be 1 or 2, got {self.degree!r}")
        if not 0.0 < self.decay < 1.0:
            raise ValueError(f"ScaleFree decay must be in (0, 1), got {self.decay!r}")
        check_positive("ScaleFree eps", self.eps)

    @property
    def n_features(self) -> int:
        return self.inner.n_features

    def init(self, params: Params) -> ScaleFreeState:
        zeros = jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), jnp.float32), params)
        return ScaleFreeState(self.inner.init(params), zeros, jnp.zeros((), jnp.int32))

    def __call__(
        self,
        grads: Updates,
        state: ScaleFreeState,
        params: Params | None,
        context: UpdateContext | None = None,
    ) -> tuple[Features, ScaleFreeState]:
        features, inner = self.inner(grads, state.inner, params, context)
        count = state.count + 1
        correction = 1.0 - self.decay ** count.astype(jnp.float32)
        second_moment = jax.tree.map(
            lambda v, g: self.decay * v + (1.0 - self.decay) * jnp.square(g.astype(jnp.float32)),
            state.second_moment,
            grads,
        )

        def normalise(
            x: Float[Array, "*shape n"], v: Float[Array, "*shape"]
        ) -> Float[Array, "*shape n"]:
            scale = v / correction + self.eps
            power = jax.lax.rsqrt(scale) if self.degree == 1 else 1.0 / scale
            return x * power[..., None]

        features = jax.tree.map(normalise, features, second_moment)
        return features, ScaleFreeState(inner, second_moment, count)
