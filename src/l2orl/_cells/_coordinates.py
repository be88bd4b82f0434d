"""Run one cell over every coordinate at once, with a cache-blocked, rematerialised backward."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from ._base import AbstractCell

CHUNK = 16384
"""Coordinates per block of the backward pass: a block's gates fit in a core's L2 cache."""


def apply_to_coordinates(
    cell: AbstractCell, features: Float[Array, "n_features n"], hidden: PyTree, block: int = CHUNK
) -> tuple[Float[Array, "n_out n"], PyTree]:
    """`cell` over `n` coordinates: `features` of shape `(n_features, n)`, every array of
    `hidden` shaped `(*h, n)` (`h` the shape in `cell.init_hidden()`).

    Values equal `jax.vmap(cell)` on the transposed inputs. Under differentiation nothing but
    the inputs is stored: the backward pass recomputes the cell block by block of `block`
    coordinates and sums the weight gradients over blocks, so its memory does not grow with
    the cell's intermediate activations and each block's work stays in cache.
    """
    return _blocked((cell, features, hidden), block)


def _rows(cell: AbstractCell, features, hidden) -> tuple:
    return cell.rows(features, hidden)


@eqx.filter_custom_vjp
def _blocked(inputs, block):
    return _rows(*inputs)


@_blocked.def_fwd
def _blocked_fwd(perturbed, inputs, block):
    del perturbed
    return _rows(*inputs), None


@_blocked.def_bwd
def _blocked_bwd(residuals, cotangents, perturbed, inputs, block):
    del residuals, perturbed
    cell, features, hidden = inputs
    arrays, static = eqx.partition(cell, eqx.is_inexact_array)
    # Outputs that were not differentiated come as None: zeros of the output's shape.
    d_out, d_hidden = jax.tree.map(
        lambda d, s: jnp.zeros(s.shape, s.dtype) if d is None else d,
        cotangents,
        jax.eval_shape(_rows, *inputs),
        is_leaf=lambda x: x is None,
    )

    def unbatched(arrays, features, hidden, d_out, d_hidden):
        return _backward(eqx.combine(arrays, static), features, hidden, d_out, d_hidden, block)

    # Under vmap (over agents, say), run the agents in groups of about `block` coordinates
    # rather than all at once, so the blocks stay cache-sized.
    backward = jax.custom_batching.custom_vmap(unbatched)

    @backward.def_vmap
    def _grouped(axis_size, in_batched, *args):
        n = args[1].shape[-1]
        leaves, treedef = jax.tree.flatten(args)
        flags = jax.tree.leaves(in_batched)
        batched = [x for x, b in zip(leaves, flags, strict=True) if b]

        def one(sliced):
            it = iter(sliced)
            merged = [next(it) if b else x for x, b in zip(leaves, flags, strict=True)]
            return unbatched(*treedef.unflatten(merged))

        if any(x.size == 0 for x in batched):  # lax.map cannot group empty arrays
            in_axes = treedef.unflatten([0 if b else None for b in flags])
            out = jax.vmap(unbatched, in_axes=tuple(in_axes))(*args)
        else:
            out = jax.lax.map(one, batched, batch_size=max(1, min(axis_size, block // n)))
        return out, jax.tree.map(lambda _: True, out)

    return backward(arrays, features, hidden, d_out, d_hidden)


def _backward(cell, features, hidden, d_out, d_hidden, block) -> tuple:
    """The vector-Jacobian product of `_rows`, computed block by block of coordinates."""
    n = features.shape[-1]
    if n <= block:
        return cell.rows_vjp(features, hidden, d_out, d_hidden)

    def step(b, carry):
        d_arrays, d_features, d_hidden_in = carry
        # The last block is shifted back to end at n; coordinates an earlier block already
        # covered are masked out of its cotangents (and kept in the outputs).
        start = jnp.minimum(b * block, n - block)
        fresh = (start + jnp.arange(block)) >= b * block

        def cut(x):
            return jax.lax.dynamic_slice_in_dim(x, start, block, axis=x.ndim - 1)

        masked = jax.tree.map(lambda d: jnp.where(fresh, cut(d), 0.0), (d_out, d_hidden))
        g_arrays, g_features, g_hidden = cell.rows_vjp(
            cut(features), jax.tree.map(cut, hidden), *masked
        )

        def put(full, part):
            kept = jnp.where(fresh, part, cut(full))
            return jax.lax.dynamic_update_slice_in_dim(full, kept, start, axis=full.ndim - 1)

        return (
            jax.tree.map(jnp.add, d_arrays, g_arrays),
            put(d_features, g_features),
            jax.tree.map(put, d_hidden_in, g_hidden),
        )

    arrays = eqx.filter(cell, eqx.is_inexact_array)
    zeros = jax.tree.map(jnp.zeros_like, (arrays, features, hidden))
    return jax.lax.fori_loop(0, -(-n // block), step, zeros)
