"""The A2C and PPO losses as standalone functions of rollout arrays (any batch shape)."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._custom_types import Metrics


def _normalized(advantages: Float[Array, "*batch"]) -> Float[Array, "*batch"]:
    return (advantages - jnp.mean(advantages)) / (jnp.std(advantages) + 1e-8)


def a2c_loss(
    log_probs: Float[Array, "*batch"],
    entropies: Float[Array, "*batch"],
    values: Float[Array, "*batch"],
    targets: Float[Array, "*batch"],
    value_coef: float | Float[Array, ""] = 0.5,
    entropy_coef: float | Float[Array, ""] = 0.01,
    normalize_advantages: bool = False,
) -> tuple[Float[Array, ""], Metrics]:
    """The advantage actor-critic loss of the Optim4RL reference.

    With `δ = sg(G) - V` (G the TD(λ) targets, no gradient through them):
    `L = -mean(sg(Â)·log π(a|s)) + value_coef·mean(δ²) - entropy_coef·mean(H[π])`, with the
    advantages `Â = δ`, or with `normalize_advantages` `δ` normalised over the batch (as
    PPO's are).

    **Returns:** `(loss, metrics)` with the policy, value and entropy terms.
    """
    td_errors = jax.lax.stop_gradient(targets) - values
    advantages = jax.lax.stop_gradient(td_errors)
    if normalize_advantages:
        advantages = _normalized(advantages)
    policy_loss = -jnp.mean(advantages * log_probs)
    value_loss = jnp.mean(jnp.square(td_errors))
    entropy = jnp.mean(entropies)
    loss = policy_loss + value_coef * value_loss - entropy_coef * entropy
    return loss, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy}


def ppo_loss(
    log_probs: Float[Array, "*batch"],
    old_log_probs: Float[Array, "*batch"],
    advantages: Float[Array, "*batch"],
    values: Float[Array, "*batch"],
    old_values: Float[Array, "*batch"],
    targets: Float[Array, "*batch"],
    entropies: Float[Array, "*batch"],
    clip_eps: float | Float[Array, ""] = 0.2,
    value_coef: float | Float[Array, ""] = 0.5,
    entropy_coef: float | Float[Array, ""] = 0.01,
    normalize_advantages: bool = True,
    value_clip_eps: float | Float[Array, ""] | None = None,
) -> tuple[Float[Array, ""], Metrics]:
    """The PPO clipped-surrogate loss (Schulman et al., 2017).

    `ρ = exp(log π - log π_old)`, `L_π = -mean(min(ρ·Â, clip(ρ, 1±ε)·Â))` with `Â` the
    advantages, normalised over the batch if `normalize_advantages`;
    `L_V = mean((V - G)²)`, or with `value_clip_eps` the clipped form
    `mean(max((V - G)², (V_old + clip(V - V_old, ±ε_V) - G)²))`;
    `L = L_π + value_coef·L_V - entropy_coef·mean(H)`. Targets and old quantities carry no
    gradient.

    **Returns:** `(loss, metrics)`; metrics include the clipped fraction and approximate KL.
    """
    old_log_probs, old_values = jax.lax.stop_gradient((old_log_probs, old_values))
    advantages, targets = jax.lax.stop_gradient((advantages, targets))
    if normalize_advantages:
        advantages = _normalized(advantages)
    log_ratio = log_probs - old_log_probs
    ratio = jnp.exp(log_ratio)
    surrogate = jnp.minimum(
        ratio * advantages, jnp.clip(ratio, 1 - clip_eps, 1 + clip_eps) * advantages
    )
    policy_loss = -jnp.mean(surrogate)
    value_loss = jnp.square(values - targets)
    if value_clip_eps is not None:
        clipped = old_values + jnp.clip(values - old_values, -value_clip_eps, value_clip_eps)
        value_loss = jnp.maximum(value_loss, jnp.square(clipped - targets))
    value_loss = jnp.mean(value_loss)
    entropy = jnp.mean(entropies)
    loss = policy_loss + value_coef * value_loss - entropy_coef * entropy
    metrics = {
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": entropy,
        "clip_fraction": jnp.mean((jnp.abs(ratio - 1) > clip_eps).astype(jnp.float32)),
        "approx_kl": jnp.mean((ratio - 1) - log_ratio),
    }
    return loss, metrics
