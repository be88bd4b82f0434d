import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._custom_types import CellOutput, CoordinateFeatures, Hidden


class AbstractCell(eqx.Module):
    """The per-coordinate network of a learned optimizer, written for ONE coordinate.

    Like `equinox.nn.GRUCell`, a cell maps one coordinate's features and hidden state to an
    output vector and a new hidden state; the optimizer vmaps it over every coordinate of every
    parameter leaf, all sharing the cell's weights (the meta-parameters).

    **Attributes:**

    - `n_features`: the size of the input feature vector.
    - `n_out`: the size of the output vector, read by the head.
    """

    n_features: eqx.AbstractVar[int]
    n_out: eqx.AbstractVar[int]

    @abc.abstractmethod
    def init_hidden(self) -> Hidden:
        """The hidden state of one coordinate at the start of training (zeros)."""

    @abc.abstractmethod
    def __call__(self, features: CoordinateFeatures, hidden: Hidden) -> tuple[CellOutput, Hidden]:
        """**Arguments:** `features` of shape `(n_features,)`, `hidden` as `init_hidden()`.

        **Returns:** `(out, hidden)`, `out` of shape `(n_out,)`.
        """


class AbstractStatelessCell(AbstractCell):
    """A cell without memory: its hidden state is an empty `(0,)` array."""

    @abc.abstractmethod
    def forward(self, features: CoordinateFeatures) -> CellOutput:
        """The output for one coordinate's features."""

    def init_hidden(self) -> Float[Array, " 0"]:
        return jnp.zeros((0,), jnp.float32)

    def __call__(
        self, features: CoordinateFeatures, hidden: Float[Array, " 0"]
    ) -> tuple[CellOutput, Float[Array, " 0"]]:
        return self.forward(features), hidden
