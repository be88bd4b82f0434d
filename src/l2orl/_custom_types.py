"""jaxtyping aliases shared across l2orl.

Shapes are written for one parameter leaf: `"?*shape"` is that leaf's shape, which may differ
from leaf to leaf of a pytree (the `?` lets it vary). Pytrees named `"T"` in one call must
share one structure, and their leaves match leaf by leaf.
"""

from typing import Any, TypeAlias

from jaxtyping import Array, Float, Key, PyTree, UInt32

Params: TypeAlias = PyTree[Float[Array, "?*shape"], "T"]
"""Agent parameters: a pytree of floating-point arrays of any shape (0-d included)."""

Updates: TypeAlias = PyTree[Float[Array, "?*shape"], "T"]
"""Gradients in, parameter updates out: same structure and shapes as `Params`."""

Features: TypeAlias = PyTree[Float[Array, "?*shape n_features"], "T"]
"""Per-coordinate features: each leaf is its parameter leaf's shape plus a feature axis."""

CoordinateFeatures: TypeAlias = Float[Array, " n_features"]
"""The features of ONE coordinate, as a cell sees them."""

CellOutput: TypeAlias = Float[Array, " n_out"]
"""The output vector of ONE coordinate's cell."""

Hidden: TypeAlias = PyTree[Float[Array, "..."]]
"""A cell's hidden state for ONE coordinate (an array, or a pytree of arrays for an LSTM)."""

PreprocessorState: TypeAlias = Any
"""Whatever a preprocessor carries between steps (`None` when stateless)."""

PRNGKey: TypeAlias = Key[Array, ""] | UInt32[Array, "2"]
"""A JAX random key: new-style typed key or legacy `uint32[2]`."""

Metrics: TypeAlias = dict[str, Float[Array, "..."]]
"""Named scalar or vector diagnostics."""
