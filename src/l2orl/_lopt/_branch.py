import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree

from .._cells import AbstractCell
from .._custom_types import Params, PreprocessorState, Updates
from .._heads import AbstractHead
from .._preprocess import AbstractPreprocessor


class BranchState(eqx.Module):
    """A branch's state: its preprocessor's state and every coordinate's hidden state.

    `hidden` follows the parameter pytree leaf by leaf: a leaf of shape `shape` holds the cell's
    hidden state (a pytree, as `cell.init_hidden()`) with each array of shape `(*shape, *h)`.
    """

    preprocessor: PreprocessorState
    hidden: PyTree


class Branch(eqx.Module):
    """One `preprocessor → cell → head` pipeline, run over every coordinate at once.

    The preprocessor sees whole pytrees; the cell and head see one coordinate and are vmapped
    over all coordinates of all leaves, raveled into a single batch.

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
        template = self.cell.init_hidden()
        hidden = jax.tree.map(
            lambda p: jax.tree.map(
                lambda h: jnp.broadcast_to(h, (*jnp.shape(p), *h.shape)), template
            ),
            params,
        )
        return BranchState(self.preprocessor.init(params), hidden)

    def __call__(
        self, grads: Updates, state: BranchState, params: Params | None
    ) -> tuple[Updates, BranchState]:
        """**Returns:** the head's value for every coordinate (float32, leaves shaped like
        `grads`) and the new state."""
        features, pre_state = self.preprocessor(grads, state.preprocessor, params)
        leaves, treedef = jax.tree.flatten(grads)
        template, template_def = jax.tree.flatten(self.cell.init_hidden())
        hidden_leaves = _matching_hidden(treedef, leaves, state.hidden, template_def, template)
        # Ravel every coordinate of every leaf into one batch, so the cell runs as a few big ops.
        offsets = [0]
        for g in leaves:
            offsets.append(offsets[-1] + int(g.size))
        flat_grads = jnp.concatenate([g.reshape(-1) for g in leaves])
        flat_features = jnp.concatenate(
            [f.reshape(g.size, self.cell.n_features) for f, g in
             zip(treedef.flatten_up_to(features), leaves, strict=True)]
        ).astype(jnp.float32)  # fmt: skip
        flat_hidden = template_def.unflatten([
            jnp.concatenate([h[j].reshape(g.size, *t.shape)
                             for h, g in zip(hidden_leaves, leaves, strict=True)])
            for j, t in enumerate(template)
        ])  # fmt: skip
        out, flat_hidden = jax.vmap(self.cell)(flat_features, flat_hidden)
        flat_dirs = jax.vmap(self.head)(out, flat_grads)
        flat_hidden = template_def.flatten_up_to(flat_hidden)
        directions, hidden = [], []
        for i, g in enumerate(leaves):
            lo, hi = offsets[i], offsets[i + 1]
            directions.append(flat_dirs[lo:hi].reshape(g.shape))
            hidden.append(template_def.unflatten(
                [h[lo:hi].reshape(*g.shape, *t.shape)
                 for h, t in zip(flat_hidden, template, strict=True)]
            ))  # fmt: skip
        return treedef.unflatten(directions), BranchState(pre_state, treedef.unflatten(hidden))


def _matching_hidden(treedef, leaves, hidden, template_def, template) -> list[list[Array]]:
    """Per gradient leaf, the list of its hidden arrays; a `ValueError` says how they mismatch."""
    try:
        per_leaf = [template_def.flatten_up_to(h) for h in treedef.flatten_up_to(hidden)]
    except (ValueError, TypeError) as error:
        raise ValueError(
            "the gradients do not match the optimizer state: init() was called on a pytree with "
            f"{len(jax.tree.leaves(hidden)) // max(len(template), 1)} leaves (state "
            f"{jax.tree.structure(hidden)}), the gradients have structure {treedef}"
        ) from error
    for path_leaf, g, hs in zip(jax.tree_util.tree_flatten_with_path(treedef.unflatten(leaves))[0],
                                leaves, per_leaf, strict=True):  # fmt: skip
        for h, t in zip(hs, template, strict=True):
            if h.shape != (*g.shape, *t.shape):
                raise ValueError(
                    f"gradient leaf {jax.tree_util.keystr(path_leaf[0]) or '<root>'} has shape "
                    f"{g.shape} but the optimizer state was made for shape "
                    f"{h.shape[: h.ndim - t.ndim]}"
                )
    return per_leaf
