import abc

import equinox as eqx
import jax
from jaxtyping import Array, Float, PyTree

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

    @abc.abstractmethod
    def rows(
        self, features: Float[Array, "n_features n"], hidden: PyTree
    ) -> tuple[Float[Array, "n_out n"], PyTree]:
        """The cell over `n` coordinates at once, coordinate axis LAST on the features, the
        output and every array of `hidden` (`(*h, n)`): `vmapped_rows` of the cell, or a
        hand-batched form where that is faster."""

    @abc.abstractmethod
    def rows_vjp(
        self,
        features: Float[Array, "n_features n"],
        hidden: PyTree,
        d_out: Float[Array, "n_out n"],
        d_hidden: PyTree,
    ) -> tuple[PyTree, Float[Array, "n_features n"], PyTree]:
        """The vector-Jacobian product of `rows`, given the cotangents of `(out, hidden')`.

        **Returns:** `(d_arrays, d_features, d_hidden)`, `d_arrays` shaped like
        `eqx.filter(self, eqx.is_inexact_array)`: `autodiff_rows_vjp` of the cell, or a
        hand-written product where that is faster.
        """


def vmapped_rows(
    cell: AbstractCell, features: Float[Array, "n_features n"], hidden: PyTree
) -> tuple[Float[Array, "n_out n"], PyTree]:
    """`cell` over `n` coordinates by `jax.vmap`, coordinate axis last."""
    return jax.vmap(cell, in_axes=(-1, -1), out_axes=-1)(features, hidden)


def autodiff_rows_vjp(
    cell: AbstractCell,
    features: Float[Array, "n_features n"],
    hidden: PyTree,
    d_out: Float[Array, "n_out n"],
    d_hidden: PyTree,
) -> tuple[PyTree, Float[Array, "n_features n"], PyTree]:
    """The vector-Jacobian product of `cell.rows` by autodiff."""
    arrays, static = eqx.partition(cell, eqx.is_inexact_array)

    def rows(arrays, x, h):
        return eqx.combine(arrays, static).rows(x, h)

    return jax.vjp(rows, arrays, features, hidden)[1]((d_out, d_hidden))


class AbstractStatelessCell(AbstractCell):
    """A cell without memory: its hidden state is the empty pytree `()`."""

    @abc.abstractmethod
    def forward(self, features: CoordinateFeatures) -> CellOutput:
        """The output for one coordinate's features."""

    def init_hidden(self) -> tuple[()]:
        return ()

    def __call__(
        self, features: CoordinateFeatures, hidden: tuple[()]
    ) -> tuple[CellOutput, tuple[()]]:
        return self.forward(features), hidden

    def rows(self, features, hidden):
        return vmapped_rows(self, features, hidden)

    def rows_vjp(self, features, hidden, d_out, d_hidden):
        return autodiff_rows_vjp(self, features, hidden, d_out, d_hidden)
