"""Small utilities every part shares: argument checks (one rule per kind of value, one
message style), a leafwise select, and returning freed heap memory to the OS."""

import ctypes
import ctypes.util
import math
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, PyTree


def check_positive_int(name: str, value: Any, *, optional: bool = False) -> None:
    """Raise a `ValueError` unless `value` is an int > 0 (not a bool); `None` passes if
    `optional`."""
    if optional and value is None:
        return
    if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        kind = "a positive int or None" if optional else "a positive int"
        raise ValueError(f"{name} must be {kind}, got {value!r}")


def check_non_negative_int(name: str, value: Any) -> None:
    """Raise a `ValueError` unless `value` is an int ≥ 0 (not a bool)."""
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        raise ValueError(f"{name} must be an int ≥ 0, got {value!r}")


def check_positive(name: str, value: Any, *, optional: bool = False) -> None:
    """Raise a `ValueError` unless `value` is a finite number > 0 (not a bool); `None` passes
    if `optional`."""
    if optional and value is None:
        return
    if not (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    ):
        kind = "a positive finite number or None" if optional else "a positive finite number"
        raise ValueError(f"{name} must be {kind}, got {value!r}")


def check_fraction(name: str, value: Any) -> None:
    """Raise a `ValueError` unless `value` is a number in `(0, 1]`."""
    if not (isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 1):
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")


def tree_select(mask: Bool[Array, "..."], on_true: PyTree, on_false: PyTree) -> PyTree:
    """Leafwise `jnp.where(mask, on_true, on_false)` over two pytrees of one structure,
    broadcasting `mask` over each leaf's trailing axes."""

    def select(a, b):
        m = jnp.reshape(mask, mask.shape + (1,) * (jnp.ndim(a) - mask.ndim))
        return jnp.where(m, a, b)

    return jax.tree.map(select, on_true, on_false)


def release_free_memory() -> None:
    """Return the C heap's free pages to the OS (glibc's `malloc_trim`; a no-op elsewhere).

    XLA's compiler frees hundreds of MB when it finishes, which glibc otherwise keeps mapped."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
