import jax
import jax.numpy as jnp

from .._context import UpdateContext
from .._custom_types import Features, Params, Updates
from ._base import AbstractPreprocessor


class Concatenate(AbstractPreprocessor):
    """Several preprocessors side by side: their features joined on the feature axis.

    `Concatenate(Identity(), Momentum((0.9, 0.99)))` has 3 features per coordinate. The state is
    the tuple of the parts' states.
    """

    parts: tuple[AbstractPreprocessor, ...]

    def __init__(self, *parts: AbstractPreprocessor):
        if not parts:
            raise ValueError("Concatenate needs at least one preprocessor")
        self.parts = parts

    @property
    def n_features(self) -> int:
        return sum(part.n_features for part in self.parts)

    def init(self, params: Params) -> tuple:
        return tuple(part.init(params) for part in self.parts)

    def __call__(
        self,
        grads: Updates,
        state: tuple,
        params: Params | None,
        context: UpdateContext | None = None,
    ) -> tuple[Features, tuple]:
        outputs = [
            part(grads, s, params, context) for part, s in zip(self.parts, state, strict=True)
        ]
        features = jax.tree.map(
            lambda *xs: jnp.concatenate([x.astype(jnp.float32) for x in xs], axis=-1),
            *(f for f, _ in outputs),
        )
        return features, tuple(s for _, s in outputs)
