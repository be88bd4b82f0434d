import abc

import equinox as eqx
import jax
from jaxtyping import Array, Float

from .._context import UpdateContext
from .._custom_types import Features, Params, PreprocessorState, Updates


class AbstractPreprocessor(eqx.Module):
    """Turns gradients (and parameters) into per-coordinate features.

    A preprocessor sees whole pytrees, so it can keep state (momenta) and compute per-tensor
    statistics (normalisation); each output leaf is its parameter leaf's shape with a trailing
    feature axis of size `n_features`.

    **Attributes:**

    - `n_features`: the size of the trailing feature axis.
    """

    n_features: eqx.AbstractVar[int]

    @abc.abstractmethod
    def init(self, params: Params) -> PreprocessorState:
        """The initial state for parameters shaped like `params` (`None` when stateless)."""

    @abc.abstractmethod
    def __call__(
        self,
        grads: Updates,
        state: PreprocessorState,
        params: Params | None,
        context: UpdateContext | None = None,
    ) -> tuple[Features, PreprocessorState]:
        """**Arguments:** `grads` and `params` (or `None`), pytrees with leaves of shape
        `shape`; `state`; the update's [`l2orl.UpdateContext`][] (`None` outside an RL loop;
        only preprocessors of the loop's facts read it, composites pass it on; every
        implementation takes it, as optax's extra-args transforms take `**extra_args`).

        **Returns:** `(features, state)`, `features` leaves of shape `(*shape, n_features)`.
        """


class AbstractElementwisePreprocessor(AbstractPreprocessor):
    """A stateless preprocessor that maps each coordinate's `(g, p)` to its features."""

    @abc.abstractmethod
    def features(
        self, grad: Float[Array, "*shape"], param: Float[Array, "*shape"] | None
    ) -> Float[Array, "*shape n_features"]:
        """Features of every coordinate of one leaf (`param` is `None` if not given)."""

    def init(self, params: Params) -> None:
        return None

    def __call__(
        self,
        grads: Updates,
        state: None,
        params: Params | None,
        context: UpdateContext | None = None,
    ) -> tuple[Features, None]:
        if params is None:
            return jax.tree.map(lambda g: self.features(g, None), grads), None
        return jax.tree.map(self.features, grads, params), None
