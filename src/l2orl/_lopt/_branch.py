import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from .._cells import AbstractCell
from .._cells._coordinates import apply_to_coordinates
from .._custom_types import Params, PreprocessorState, Updates
from .._heads import AbstractHead
from .._preprocess import AbstractElementwisePreprocessor, AbstractPreprocessor
from ._base import ravel, unravel


class BranchState(eqx.Module):
    """A branch's state: its preprocessor's state and every coordinate's hidden state.

    `hidden` is the cell's hidden state (a pytree, as `cell.init_hidden()`) for all
    coordinates of all parameter leaves, raveled in leaf order onto one LAST axis: each array
    has shape `(*h, n_coordinates)`.
    """

    preprocessor: PreprocessorState
    hidden: PyTree
    layout: tuple[tuple[str, tuple[int, ...]], ...] = eqx.field(static=True)
    """The parameter leaves the state was made for: `(key path, shape)` each."""


class Branch(eqx.Module):
    """One `preprocessor → cell → head` pipeline, run over every coordinate at once.

    The preprocessor sees whole pytrees; the cell and head see one coordinate and run over all
    coordinates of all leaves, raveled into a single batch (the cell through
    `apply_to_coordinates`: a blocked, rematerialised backward pass).

    **Arguments:** `preprocessor`, `cell`, `head`. Raises `ValueError` if the preprocessor's
    `n_features` differs from the cell's, or the cell's `n_out` from the head's `n_in`.
    """

    preprocessor: AbstractPreprocessor
    cell: AbstractCell
    head: AbstractHead

    def __check_init__(self):
        if self.preprocessor.n_features != self.cell.n_features:
            raise ValueError(
                f"the preprocessor {type(self.preprocessor).__name__} gives "
                f"{self.preprocessor.n_features} features but the cell {type(self.cell).__name__} "
                f"expects n_features={self.cell.n_features}"
            )
        if self.cell.n_out != self.head.n_in:
            raise ValueError(
                f"the cell {type(self.cell).__name__} gives n_out={self.cell.n_out} outputs but "
                f"the head {type(self.head).__name__} reads n_in={self.head.n_in}"
            )

    def init(self, params: Params) -> BranchState:
        n = sum(int(jnp.size(p)) for p in jax.tree.leaves(params))
        hidden = jax.tree.map(
            lambda h: jnp.broadcast_to(h[..., None], (*h.shape, n)), self.cell.init_hidden()
        )
        return BranchState(self.preprocessor.init(params), hidden, _layout(params))

    def features(
        self, grads: Updates, state: BranchState, params: Params | None
    ) -> tuple[Float[Array, "n_features n"], PreprocessorState]:
        """The preprocessor's features of every coordinate of every leaf, raveled in leaf
        order onto the LAST axis, and the preprocessor's new state."""
        leaves, treedef = jax.tree.flatten(grads)
        _check_layout(_layout(grads), state.layout)
        if isinstance(self.preprocessor, AbstractElementwisePreprocessor):
            # Coordinate by coordinate: straight from the raveled gradients, no work per leaf.
            flat_params = None if params is None else ravel(params)
            features = self.preprocessor.features(ravel(grads), flat_params)
            return features.astype(jnp.float32).T, state.preprocessor
        features, pre_state = self.preprocessor(grads, state.preprocessor, params)
        flat = jnp.concatenate(
            [
                f.reshape(g.size, self.cell.n_features)
                for f, g in zip(treedef.flatten_up_to(features), leaves, strict=True)
            ]
        )
        return flat.astype(jnp.float32).T, pre_state

    def step(
        self, features: Float[Array, "n_features n"], grads: Float[Array, " n"], hidden: PyTree
    ) -> tuple[Float[Array, " n"], PyTree]:
        """The cell and head over `n` coordinates (raveled as `features` returns them):
        **returns** the head's value for each and the cells' new hidden state."""
        out, hidden = apply_to_coordinates(self.cell, features, hidden)
        return jax.vmap(self.head, in_axes=(-1, 0))(out, grads), hidden

    def __call__(
        self, grads: Updates, state: BranchState, params: Params | None
    ) -> tuple[Updates, BranchState]:
        """`features` then `step`: **returns** the head's value for every coordinate (float32,
        leaves shaped like `grads`) and the new state."""
        features, pre_state = self.features(grads, state, params)
        directions, hidden = self.step(features, ravel(grads), state.hidden)
        return unravel(directions, grads), BranchState(pre_state, hidden, state.layout)


def _layout(tree: PyTree) -> tuple[tuple[str, tuple[int, ...]], ...]:
    paths = jax.tree_util.tree_flatten_with_path(tree)[0]
    return tuple((jax.tree_util.keystr(path) or "<root>", jnp.shape(x)) for path, x in paths)


def _check_layout(got: tuple, expected: tuple) -> None:
    """A `ValueError` naming how the gradients' leaves differ from the state's."""
    if [path for path, _ in got] != [path for path, _ in expected]:
        raise ValueError(
            "the gradients do not match the optimizer state: init() was called on leaves "
            f"{[path for path, _ in expected]}, the gradients have {[path for path, _ in got]}"
        )
    for (path, shape), (_, made_for) in zip(got, expected, strict=True):
        if shape != made_for:
            raise ValueError(
                f"gradient leaf {path} has shape {shape} but the optimizer state was made for "
                f"shape {made_for}"
            )
