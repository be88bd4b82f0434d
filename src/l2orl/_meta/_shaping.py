"""Fitness shaping for evolution strategies: losses replaced by ranks or z-scores before the
ES update, so that the estimate ignores the losses' scale and one diverged member cannot
poison it."""

from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

FITNESS_SHAPINGS: tuple[str, ...] = ("none", "centered_ranks", "z_score")
"""The fitness shapings an ES estimator or [`l2orl.LifetimeTraining`][] takes (see
[`l2orl.shape_fitness`][])."""


def check_fitness_shaping(value: Any) -> None:
    """Raise a `ValueError` unless `value` is one of `FITNESS_SHAPINGS`."""
    if not (isinstance(value, str) and value in FITNESS_SHAPINGS):
        raise ValueError(f"fitness_shaping must be one of {list(FITNESS_SHAPINGS)}, got {value!r}")


def finite_mean(losses: Float[Array, " m"]) -> Float[Array, ""]:
    """The mean of the finite `losses` (NaN if none is finite)."""
    finite = jnp.isfinite(losses)
    return jnp.sum(jnp.where(finite, losses, 0.0)) / jnp.where(
        jnp.any(finite), jnp.sum(finite), jnp.nan
    )


def shape_fitness(losses: Float[Array, " m"], shaping: str) -> Float[Array, " m"]:
    """`losses` (lower is better) shaped jointly, as `shaping` says:

    - `"none"`: unchanged (a non-finite loss stays non-finite);
    - `"centered_ranks"`: `rank / (m − 1) − 0.5`, the lowest loss −0.5 and the highest +0.5
      (ties share their mean rank): invariant to any increasing transform of the losses;
    - `"z_score"`: `(x − mean) / std` over the finite losses (0 when they are all equal):
      invariant to shifting and positively scaling them.

    Under both shapings a non-finite loss (NaN or ±inf, a diverged member) counts as the
    worst: it ranks above every finite loss, or takes the largest z-score of the finite
    ones; when no loss is finite, every shaped value is equal.

    **Raises:** `ValueError` for an unknown `shaping`.
    """
    check_fitness_shaping(shaping)
    if shaping == "none":
        return losses
    finite = jnp.isfinite(losses)
    if shaping == "centered_ranks":
        ranks = jax.scipy.stats.rankdata(jnp.where(finite, losses, jnp.inf)) - 1.0
        return (ranks / max(losses.shape[0] - 1, 1) - 0.5).astype(losses.dtype)
    mean = finite_mean(losses)
    centred = jnp.where(finite, losses - mean, 0.0)
    std = jnp.sqrt(jnp.sum(jnp.square(centred)) / jnp.maximum(jnp.sum(finite), 1))
    z = jnp.where(std > 0, centred / jnp.where(std > 0, std, 1.0), 0.0)
    worst = jnp.max(jnp.where(finite, z, -jnp.inf))
    return jnp.where(finite, z, jnp.where(jnp.any(finite), worst, 0.0))
