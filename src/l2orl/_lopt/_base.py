import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import PyTree

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
        """**Arguments:** `updates` (the gradients), `state`, `params`; extra args are ignored.

        **Returns:** `(updates, state)`: the parameter updates Δθ (same structure, shapes and
        dtypes as the gradients) to add with `optax.apply_updates`, and the new state.
        """

    def as_optax(self) -> optax.GradientTransformationExtraArgs:
        """This optimizer as an optax transform (chain it, wrap it in `MultiSteps`, …)."""
        return optax.GradientTransformationExtraArgs(self.init, self.update)

    @property
    def n_meta_parameters(self) -> int:
        """The number of scalar meta-parameters (floating-point array entries)."""
        leaves = jax.tree.leaves(eqx.filter(self, eqx.is_inexact_array))
        return sum(int(leaf.size) for leaf in leaves)
