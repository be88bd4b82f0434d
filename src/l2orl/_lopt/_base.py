import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PyTree

from .._context import UpdateContext, context_of
from .._custom_types import Params, Updates


def check_params(params: Params) -> None:
    """Raise a `TypeError` naming the first leaf that is not a floating-point array."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        try:
            inexact = jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)
        except TypeError:  # not an array or number at all
            inexact = False
        if not inexact:
            dtype = getattr(leaf, "dtype", type(leaf).__name__)
            raise TypeError(
                f"learned optimizers update floating-point parameters only; leaf "
                f"{jax.tree_util.keystr(path) or '<root>'} has dtype {dtype}"
            )


def prepare_inputs(
    updates: Updates, params: Params | None, stop_gradient: bool
) -> tuple[Updates, Params | None]:
    """Gradients (and params) as float32, stop-gradiented if asked: what the cells see."""

    def prep(x):
        x = jnp.asarray(x, jnp.float32)
        return jax.lax.stop_gradient(x) if stop_gradient else x

    grads = jax.tree.map(prep, updates)
    return grads, (None if params is None else jax.tree.map(prep, params))


def ravel(tree: PyTree) -> Float[Array, " n"]:
    """Every coordinate of every leaf of `tree` in leaf order, as float32 (`(0,)` if none)."""
    leaves = [jnp.asarray(x, jnp.float32).reshape(-1) for x in jax.tree.leaves(tree)]
    return jnp.concatenate(leaves) if leaves else jnp.zeros((0,), jnp.float32)


def unravel(flat: Float[Array, " n"], like: PyTree) -> PyTree:
    """`flat` (as `ravel` orders it) back into leaves shaped and typed like `like`'s."""
    leaves, treedef = jax.tree.flatten(like)
    out, offset = [], 0
    for leaf in leaves:
        out.append(flat[offset : offset + leaf.size].reshape(leaf.shape).astype(leaf.dtype))
        offset += leaf.size
    return treedef.unflatten(out)


class AbstractLearnedOptimizer(eqx.Module):
    """A learned optimizer: an Equinox module whose array leaves are its meta-parameters.

    Subclasses implement `init` and `update` with optax's signatures; `as_optax()` turns the
    optimizer into an `optax.GradientTransformationExtraArgs`. Because Equinox bound methods are
    pytrees, the transform carries the meta-parameters: differentiate through it with
    `eqx.filter_grad`, and pass it through `eqx.filter_jit` without retracing when only the
    meta-parameters change.
    """

    @abc.abstractmethod
    def init(self, params: Params) -> PyTree:
        """The optimizer state for `params`: hidden states zeros, accumulators and counts reset."""

    @abc.abstractmethod
    def update(
        self, updates: Updates, state: PyTree, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, PyTree]:
        """**Arguments:** `updates` (the gradients), `state`, `params`; the extra argument
        `context` (an [`l2orl.UpdateContext`][], optional) reaches the parts that read the RL
        loop's facts; other extra args are ignored.

        **Returns:** `(updates, state)`: the parameter updates Δθ (same structure, shapes and
        dtypes as the gradients) to add with `optax.apply_updates`, and the new state.
        """

    def as_optax(self) -> optax.GradientTransformationExtraArgs:
        """This optimizer as an optax transform (chain it, wrap it in `MultiSteps`, …). As
        optax's own transforms, it takes NumPy arrays too (flax serialization restores
        states as NumPy arrays). Its functions are this module's bound methods, pytrees
        of the meta-parameters: two transforms of optimizers with the same structure trace
        alike, so `jax.jit` compiles a training loop once for all of them."""
        return optax.GradientTransformationExtraArgs(self.init, self._optax_update)

    def _optax_update(
        self, updates: Any, state: Any, params: Any = None, **extra_args: Any
    ) -> tuple[Updates, PyTree]:
        """`update` on any array-likes (NumPy arrays included), as optax's transforms take."""
        updates, state, params = jax.tree.map(jnp.asarray, (updates, state, params))
        return self.update(updates, state, params, **extra_args)

    @property
    def n_meta_parameters(self) -> int:
        """The number of scalar meta-parameters (floating-point array entries)."""
        leaves = jax.tree.leaves(eqx.filter(self, eqx.is_inexact_array))
        return sum(int(leaf.size) for leaf in leaves)


class AbstractCoordinatewiseOptimizer(AbstractLearnedOptimizer):
    """A learned optimizer whose update of each coordinate depends on the meta-parameters only
    through that coordinate's own hidden state.

    An update is split in two: `coordinate_inputs`, which holds no meta-parameters (the
    preprocessors: momenta, normalisation, features of whole tensors), and `coordinate_step`,
    the meta-parameterised part, one coordinate at a time over a batch of them (coordinate
    axis last). `update` composes the two over every coordinate at once; the split lets
    [`l2orl.TruncatedBPTT`][] with `coordinate_fraction` replay the second part for a sample
    of coordinates only. With `stop_gradient_inputs`, the meta-gradient of any function of the
    parameters after `K` updates is then a sum over coordinates.
    """

    stop_gradient_inputs: eqx.AbstractVar[bool]

    @property
    @abc.abstractmethod
    def input_parts(self) -> tuple[eqx.Module, ...]:
        """The modules `coordinate_inputs` runs (the preprocessors): meta-parameters in them
        would reach the update through every coordinate at once."""

    @abc.abstractmethod
    def coordinate_inputs(
        self, grads: Updates, state: PyTree, params: Params | None, context: UpdateContext
    ) -> tuple[PyTree, PyTree]:
        """**Arguments:** the prepared (float32) gradients and parameters, the state, the
        update's context.

        **Returns:** `(inputs, state)`: every coordinate's inputs to `coordinate_step` (arrays
        with the coordinates raveled in leaf order on the LAST axis, `(..., n)`), and the state
        with everything but the hidden state advanced."""

    @abc.abstractmethod
    def coordinate_step(self, inputs: PyTree, hidden: PyTree) -> tuple[Float[Array, " n"], PyTree]:
        """The update Δθ of `n` coordinates (float32) from their `inputs` (as
        `coordinate_inputs` gives them, possibly a subset of coordinates) and `hidden` state,
        and their new hidden state."""

    @abc.abstractmethod
    def hidden(self, state: PyTree) -> PyTree:
        """The per-coordinate hidden state inside `state` (arrays `(..., n)`)."""

    @abc.abstractmethod
    def with_hidden(self, state: PyTree, hidden: PyTree) -> PyTree:
        """`state` with its per-coordinate hidden state replaced by `hidden`."""

    def coordinate_update(
        self,
        updates: Updates,
        state: PyTree,
        params: Params | None = None,
        context: UpdateContext | None = None,
    ) -> tuple[Updates, PyTree, PyTree]:
        """`update`, also returning every coordinate's `coordinate_step` inputs:
        `(updates, state, inputs)`."""
        grads, params = prepare_inputs(updates, params, self.stop_gradient_inputs)
        context = UpdateContext() if context is None else context
        inputs, state = self.coordinate_inputs(grads, state, params, context)
        flat, hidden = self.coordinate_step(inputs, self.hidden(state))
        return unravel(flat, updates), self.with_hidden(state, hidden), inputs

    def update(
        self, updates: Updates, state: PyTree, params: Params | None = None, **extra_args: Any
    ) -> tuple[Updates, PyTree]:
        new, state, _ = self.coordinate_update(updates, state, params, context_of(extra_args))
        return new, state
