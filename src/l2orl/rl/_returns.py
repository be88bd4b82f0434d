"""Advantage and return estimators over a rollout's time axis (axis 0; any batch axes after)."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float


def gae(
    rewards: Float[Array, "T *batch"],
    values: Float[Array, "T *batch"],
    next_values: Float[Array, "T *batch"],
    terminated: Bool[Array, "T *batch"],
    done: Bool[Array, "T *batch"],
    gamma: float | Float[Array, ""],
    lam: float | Float[Array, ""],
) -> Float[Array, "T *batch"]:
    """Generalised advantage estimates (Schulman et al., 2016).

    `δ_t = r_t + γ·(1 - terminated_t)·V'_t - V_t` and `A_t = δ_t + γλ·(1 - done_t)·A_{t+1}`,
    where `V'_t` is the value of the state reached at step `t` (before any auto-reset), so a
    time-limit truncation (`done` but not `terminated`) bootstraps from it while the advantage
    chain still stops at the episode's end.

    **Arguments:** per-step `rewards`, `values` `V_t`, `next_values` `V'_t`, `terminated`, `done`
    (`terminated | truncated`), `gamma`, `lam`. **Returns:** `A`, shaped like `rewards`.
    """
    not_terminal = 1.0 - terminated.astype(rewards.dtype)
    continues = 1.0 - done.astype(rewards.dtype)
    deltas = rewards + gamma * not_terminal * next_values - values

    def backward(next_advantage, inputs):
        delta, cont = inputs
        advantage = delta + gamma * lam * cont * next_advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(
        backward, jnp.zeros_like(deltas[0]), (deltas, continues), reverse=True
    )
    return advantages


def td_lambda(
    rewards: Float[Array, "T *batch"],
    values: Float[Array, "T *batch"],
    next_values: Float[Array, "T *batch"],
    terminated: Bool[Array, "T *batch"],
    done: Bool[Array, "T *batch"],
    gamma: float | Float[Array, ""],
    lam: float | Float[Array, ""],
) -> Float[Array, "T *batch"]:
    """TD(λ) targets (λ-returns) `G_t = A_t + V_t`, with [`l2orl.rl.gae`][]'s conventions.

    Recursively, `G_t = r_t + γ·(1 - terminated_t)·((1 - λ_t)·V'_t + λ_t·G_{t+1})` with
    `λ_t = λ·(1 - done_t)`.
    """
    return gae(rewards, values, next_values, terminated, done, gamma, lam) + values
