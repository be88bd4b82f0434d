import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Int

from .._context import UpdateContext
from .._custom_types import Features, Params, Updates
from .._utils import check_positive
from ._base import AbstractPreprocessor

_DEFAULT_TIMESCALES = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1e3, 3e3, 1e4, 3e4, 1e5)


class TimeFeatures(AbstractPreprocessor):
    """Training-progress features `tanh(t/τ - offset)` at several timescales `τ`.

    `t` is this optimizer's own step count (0 on the first update), kept in the state as an
    `int32` scalar, so every agent of a pipeline carries its own. The same features are
    broadcast to every coordinate.

    **Arguments:** `timescales` (default 1, 3, 10, …, 1e5: eleven values), `offset` (default 0;
    STAR uses 1).
    """

    timescales: tuple[float, ...] = eqx.field(static=True, default=_DEFAULT_TIMESCALES)
    offset: float = eqx.field(static=True, default=0.0)

    def __check_init__(self):
        if not self.timescales:
            raise ValueError("TimeFeatures needs at least one timescale")
        for tau in self.timescales:
            check_positive("TimeFeatures timescale", tau)

    @property
    def n_features(self) -> int:
        return len(self.timescales)

    def init(self, params: Params) -> Int[Array, ""]:
        return jnp.zeros((), jnp.int32)

    def __call__(
        self,
        grads: Updates,
        state: Int[Array, ""],
        params: Params | None,
        context: UpdateContext | None = None,
    ) -> tuple[Features, Int[Array, ""]]:
        t = state.astype(jnp.float32)
        values = jnp.tanh(t / jnp.asarray(self.timescales, jnp.float32) - self.offset)
        features = jax.tree.map(
            lambda g: jnp.broadcast_to(values, (*jnp.shape(g), len(values))), grads
        )
        return features, state + 1
