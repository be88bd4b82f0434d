from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from .._cells import AbstractCell
from .._cells._coordinates import apply_to_coordinates
from .._context import UpdateContext
from .._custom_types import Params, PreprocessorState, Updates
from .._heads import AbstractHead, AbstractStochasticHead
from .._preprocess import AbstractElementwisePreprocessor, AbstractPreprocessor
from ._base import ravel, unravel


class BranchState(NamedTuple):
    """A branch's state: its preprocessor's state and every coordinate's hidden state.

    `hidden` is the cell's hidden state (a pytree, as `cell.init_hidden()`) for all
    coordinates of all parameter leaves, raveled in leaf order onto one LAST axis: each array
    has shape `(*h, n_coordinates)`. A NamedTuple of arrays, as optax's states: flax
    serialization and orbax save it as they save Adam's.
    """

    preprocessor: PreprocessorState
    hidden: PyTree


class Branch(eqx.Module):
    """One `preprocessor → cell → head` pipeline, run over every coordinate at once.

    The preprocessor sees whole pytrees; the cell and head see one coordinate and run over all
    coordinates of all leaves, raveled into a single batch (the cell through
    `apply_to_coordinates`: a blocked, rematerialised backward pass).

    The head reads each coordinate's gradient, or with `direction=k` the preprocessor's
    feature `k` in its place: `ExpScaleHead` then gives `exp(o)·x_k`, a learned step along
    another direction than `g` (Adam's `m̂/√v̂`, say).

    **Arguments:** `preprocessor`, `cell`, `head`, `direction` (default None: the gradient).
    Raises `ValueError` if the preprocessor's `n_features` differs from the cell's, the
    cell's `n_out` from the head's `n_in`, or `direction` is not a feature's index.
    """

    preprocessor: AbstractPreprocessor
    cell: AbstractCell
    head: AbstractHead
    direction: int | None = eqx.field(static=True, default=None)

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
        if self.direction is not None and not 0 <= self.direction < self.cell.n_features:
            raise ValueError(
                f"direction={self.direction!r} is not the index of one of the "
                f"{self.cell.n_features} features of {type(self.preprocessor).__name__}"
            )

    def init(self, params: Params) -> BranchState:
        n = sum(int(jnp.size(p)) for p in jax.tree.leaves(params))
        hidden = jax.tree.map(
            lambda h: jnp.broadcast_to(h[..., None], (*h.shape, n)), self.cell.init_hidden()
        )
        return BranchState(self.preprocessor.init(params), hidden)

    def features(
        self,
        grads: Updates,
        state: BranchState,
        params: Params | None,
        context: UpdateContext | None = None,
    ) -> tuple[Float[Array, "n_features n"], PreprocessorState]:
        """The preprocessor's features of every coordinate of every leaf, raveled in leaf
        order onto the LAST axis, and the preprocessor's new state. With a stochastic head
        ([`l2orl.AbstractStochasticHead`][]), the head's noise `ξ` is one more row, the last."""
        features, pre_state = self._features(grads, state, params, context)
        if isinstance(self.head, AbstractStochasticHead):
            noise = self.head.noise(grads, UpdateContext() if context is None else context)
            features = jnp.concatenate([features, noise[None]])
        return features, pre_state

    def _features(self, grads, state, params, context):
        leaves, treedef = jax.tree.flatten(grads)
        _check_coordinates(leaves, state.hidden)
        if isinstance(self.preprocessor, AbstractElementwisePreprocessor):
            # Coordinate by coordinate: straight from the raveled gradients, no work per leaf.
            flat_params = None if params is None else ravel(params)
            features = self.preprocessor.features(ravel(grads), flat_params)
            return features.astype(jnp.float32).T, state.preprocessor
        features, pre_state = self.preprocessor(grads, state.preprocessor, params, context)
        flat = jnp.concatenate(
            [
                f.reshape(g.size, self.cell.n_features)
                for f, g in zip(treedef.flatten_up_to(features), leaves, strict=True)
            ]
            or [jnp.zeros((0, self.cell.n_features))]
        )
        return flat.astype(jnp.float32).T, pre_state

    def step(
        self, features: Float[Array, "n_features n"], grads: Float[Array, " n"], hidden: PyTree
    ) -> tuple[Float[Array, " n"], PyTree]:
        """The cell and head over `n` coordinates (raveled as `features` returns them):
        **returns** the head's value for each and the cells' new hidden state."""
        noisy = isinstance(self.head, AbstractStochasticHead)
        cell_features = features[:-1] if noisy else features
        out, hidden = apply_to_coordinates(self.cell, cell_features, hidden)
        along = grads if self.direction is None else features[self.direction]
        if noisy:
            return jax.vmap(self.head, in_axes=(-1, 0, 0))(out, along, features[-1]), hidden
        return jax.vmap(self.head, in_axes=(-1, 0))(out, along), hidden

    def __call__(
        self,
        grads: Updates,
        state: BranchState,
        params: Params | None,
        context: UpdateContext | None = None,
    ) -> tuple[Updates, BranchState]:
        """`features` then `step`: **returns** the head's value for every coordinate (float32,
        leaves shaped like `grads`) and the new state."""
        features, pre_state = self.features(grads, state, params, context)
        directions, hidden = self.step(features, ravel(grads), state.hidden)
        return unravel(directions, grads), BranchState(pre_state, hidden)


def _check_coordinates(leaves: list, hidden: PyTree) -> None:
    """A `ValueError` if the gradients' coordinates are not those the state was made for."""
    n = sum(int(jnp.size(g)) for g in leaves)
    made_for = {jnp.shape(h)[-1] for h in jax.tree.leaves(hidden)}
    if made_for and made_for != {n}:
        raise ValueError(
            f"the gradients have {n} coordinates but the optimizer state was made for "
            f"{made_for.pop()}: init() was called on other parameters"
        )
