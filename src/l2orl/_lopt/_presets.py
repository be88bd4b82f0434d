"""The learned optimizers of Lan et al. (2024), built from parts with the reference's sizes.

Presets are snake_case factories: each returns an instance of a general final class
(`MomentRatioOptimizer`, `PerCoordinateOptimizer`, `NominalStepOptimizer`) configured as
published, so a preset and a hand-built optimizer of the same parts are the same object."""

from collections.abc import Callable

import jax

from .._cells import GRUCell, MLPCell
from .._custom_types import PRNGKey
from .._heads import DirectionMagnitudeHead, ExpHead, ExpScaleHead, GainBiasHead, SignExpHead
from .._preprocess import (
    AdafacFeatures,
    Concatenate,
    Identity,
    ParamValue,
    RMSNormalize,
    SignLog,
    Square,
    TimeFeatures,
)
from ._base import AbstractLearnedOptimizer
from ._branch import Branch
from ._moment_ratio import MomentRatioOptimizer
from ._per_coordinate import PerCoordinateOptimizer
from ._star import NominalStepOptimizer


def _key(key: PRNGKey | None) -> PRNGKey:
    return jax.random.key(0) if key is None else key


def optim4rl(
    step_size: float = 1e-3,
    hidden_size: int = 8,
    eps: float = 1e-8,
    *,
    stop_gradient_inputs: bool = True,
    key: PRNGKey | None = None,
) -> MomentRatioOptimizer:
    """Optim4RL: two GRUs shaped like Adam.

    Per coordinate, with its own hidden states `h1, h2` (zeros at init):

    - `h1, x1 = GRU1(h1, g)`, `o1 = W1 x1 + b1`, `m = sign(g)·exp(o1)`
    - `h2, x2 = GRU2(h2, g²)`, `o2 = W2 x2 + b2`, `v = exp(o2)`
    - `Δθ = -α·m·rsqrt(v + ε)`

    514 meta-parameters at `hidden_size=8` (each branch: GRU 248 + readout 9). The reference
    clips `g` to ±1 before the networks on gridworlds and Brax: chain `optax.clip(1.0)` first.

    **Arguments:** `step_size` α (default 1e-3), `hidden_size` (default 8), `eps` (1e-8),
    `stop_gradient_inputs` (default True), `key` (default `jax.random.key(0)`).
    """
    k1, k2 = jax.random.split(_key(key))
    return MomentRatioOptimizer(
        m_branch=Branch(Identity(), GRUCell(1, hidden_size, key=k1), SignExpHead()),
        v_branch=Branch(Square(), GRUCell(1, hidden_size, key=k2), ExpHead()),
        step_size=step_size,
        eps=eps,
        stop_gradient_inputs=stop_gradient_inputs,
    )


def l2lgd2(
    step_size: float = 1e-3,
    hidden_size: int = 8,
    *,
    stop_gradient_inputs: bool = True,
    key: PRNGKey | None = None,
) -> PerCoordinateOptimizer:
    """L2LGD2 (Andrychowicz et al., 2016, as in the Optim4RL code): a learned step size on `g`.

    `x = SignLog(p=10)(g)` (two features), `h, y = GRU(h, x)`, `o = W y + b`,
    `Δθ = -α·exp(o)·g`. 281 meta-parameters at `hidden_size=8`.

    **Arguments:** `step_size` α (default 1e-3), `hidden_size` (default 8),
    `stop_gradient_inputs` (default True), `key` (default `jax.random.key(0)`).
    """
    return PerCoordinateOptimizer(
        SignLog(p=10.0, eps=1e-8),
        GRUCell(2, hidden_size, key=_key(key)),
        ExpScaleHead(),
        step_size,
        stop_gradient_inputs=stop_gradient_inputs,
    )


def linear_optim(
    step_size: float = 1e-3,
    hidden_size: int = 8,
    *,
    stop_gradient_inputs: bool = True,
    key: PRNGKey | None = None,
) -> PerCoordinateOptimizer:
    """LinearOptim ("Lin-Opt"): a learned gain on `g` plus a learned sign-free bias.

    `h, y = GRU(h, g)`, `(o1, o2, o3) = W y + b`, `Δθ = -α·(exp(o1)·g + exp(o2)·o3)`.
    275 meta-parameters at `hidden_size=8`.

    **Arguments:** `step_size` α (default 1e-3), `hidden_size` (default 8),
    `stop_gradient_inputs` (default True), `key` (default `jax.random.key(0)`).
    """
    return PerCoordinateOptimizer(
        Identity(),
        GRUCell(1, hidden_size, n_out=3, key=_key(key)),
        GainBiasHead(),
        step_size,
        stop_gradient_inputs=stop_gradient_inputs,
    )


def star(
    step_size: float = 1e-3,
    nominal_step_size: float = 1e-3,
    hidden_widths: tuple[int, ...] = (4, 4),
    *,
    stop_gradient_inputs: bool = True,
    key: PRNGKey | None = None,
) -> NominalStepOptimizer:
    """STAR (Harrison et al., 2022): learned_optimization's `MLPNomLOpt`, written natively.

    Per coordinate, the features are `[g, θ]` and the 26 accumulator features of
    [`l2orl.AdafacFeatures`][], normalised per tensor by [`l2orl.RMSNormalize`][] (ε = 1e-5),
    then 11 un-normalised time features `tanh(t/τ - 1)`, τ ∈ {1, 3, 10, …, 1e5}: 39 inputs. An
    MLP (two hidden layers of 4, ReLU) gives `(d, s, ·, ·)` and the update is

    `Δθ = -α·d·exp(0.001·s) - α_nom·exp(0.001)·mean_i(m_i·rsqrt(rms + 1e-6))`,

    the second term a fixed nominal Adam-AggMo step (α_nom = 1e-3 as the reference, whatever α
    is). Meta-parameters: the MLP (200) and the 7 decay offsets of the accumulators: 207.

    **Arguments:** `step_size` α (default 1e-3), `nominal_step_size` (default 1e-3),
    `hidden_widths` (default `(4, 4)`), `stop_gradient_inputs` (default True), `key`
    (default `jax.random.key(0)`).
    """
    preprocessor = Concatenate(
        RMSNormalize(Concatenate(Identity(), ParamValue(), AdafacFeatures())),
        TimeFeatures(offset=1.0),
    )
    cell = MLPCell(
        preprocessor.n_features, hidden_widths, n_out=4, activation="relu", key=_key(key)
    )
    return NominalStepOptimizer(
        Branch(preprocessor, cell, DirectionMagnitudeHead(exp_mult=0.001, n_in=4)),
        step_size,
        nominal_step_size,
        stop_gradient_inputs,
    )


PRESETS: dict[str, Callable[..., AbstractLearnedOptimizer]] = {
    "Optim4RL": optim4rl,
    "L2LGD2": l2lgd2,
    "LinearOptim": linear_optim,
    "STAR": star,
}
"""The presets by their published names (as configs and the command line spell them)."""
