"""The learned optimizers of Lan et al. (2024), built from parts with the reference's sizes,
and an OPEN-like one (Goldie et al., 2024).

Presets are snake_case factories: each returns an instance of a general final class
(`MomentRatioOptimizer`, `PerCoordinateOptimizer`, `NominalStepOptimizer`,
`HypernetworkOptimizer`) configured as published, so a preset and a hand-built optimizer of
the same parts are the same object."""

import functools
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .._cells import GRUCell, LSTMCell, MLPCell
from .._custom_types import PRNGKey
from .._heads import (
    DirectionMagnitudeHead,
    ExpHead,
    ExpScaleHead,
    GainBiasHead,
    NoisyHead,
    SignExpHead,
)
from .._preprocess import (
    AdafacFeatures,
    Concatenate,
    ContextFeatures,
    Identity,
    Momentum,
    ParamValue,
    RMSNormalize,
    ScaleFree,
    SignLog,
    Square,
    TensorFeatures,
    TimeFeatures,
)
from ._base import AbstractLearnedOptimizer
from ._branch import Branch
from ._hypernetwork import HypernetworkOptimizer
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


def optim4rl_scale_free(
    step_size: float = 1e-3,
    hidden_size: int = 8,
    eps: float = 1e-8,
    momentum: float = 0.9,
    max_step: float | None = None,
    context: tuple[str, ...] = (),
    direction: str = "sign",
    *,
    stop_gradient_inputs: bool = True,
    key: PRNGKey | None = None,
) -> MomentRatioOptimizer:
    """Optim4RL with scale-free inputs: the same two GRUs and `Δθ = -α·m·rsqrt(v + ε)`, but
    each GRU reads the gradient normalised per coordinate by its running RMS
    ([`l2orl.ScaleFree`][], `v̂` the bias-corrected mean of `g²` at 0.999):

    - m-branch: `(g/√v̂, m/√v̂)`, `m` the momentum of `g` at `momentum` (Adam's direction);
      `m = sign(g)·exp(o1)`;
    - v-branch: `g²/v̂`; `v = exp(o2)`.

    Multiplying all gradients by a constant leaves the update unchanged, so what is learned
    at one gradient scale holds at every other: plain Optim4RL's GRUs read `g` and `g²`,
    which vanish at small gradients, where it becomes sign descent. The readouts start at
    zero, so the untrained optimizer is sign descent with step α at every scale, what plain
    Optim4RL does at small gradients. With `max_step` each step is at most `max_step·α`
    (see [`l2orl.MomentRatioOptimizer`][]). With `context`, both GRUs also read those facts of
    the RL loop ([`l2orl.ContextFeatures`][], e.g. `("training_proportion",
    "batch_proportion")`), so the response can change over an agent's life and between A2C
    and PPO; the untrained optimizer is the same sign descent. 538 meta-parameters at
    `hidden_size=8`, 48 more per fact.

    With `direction="adam"` the m-branch steps along Adam's direction instead of `sign(g)`:
    its momentum is bias-corrected (`m̂`) and `m = exp(o1)·m̂/√v̂` (an
    [`l2orl.ExpScaleHead`][] on that feature), so the untrained optimizer is Adam with
    learning rate α and betas `(momentum, 0.999)`, and meta-training learns how far each
    coordinate's step departs from Adam's.

    **Arguments:** `step_size` α (default 1e-3), `hidden_size` (8), `eps` (1e-8), `momentum`
    (0.9), `max_step` (default None: no bound), `context` (default none), `direction`
    (`"sign"` or `"adam"`, default `"sign"`), `stop_gradient_inputs` (default True), `key`
    (default `jax.random.key(0)`).
    """
    if direction not in ("sign", "adam"):
        raise ValueError(f"direction must be 'sign' or 'adam', got {direction!r}")
    adam = direction == "adam"
    k1, k2 = jax.random.split(_key(key))

    def with_context(inputs):
        return Concatenate(inputs, ContextFeatures(context)) if context else inputs

    m_inputs = with_context(ScaleFree(Concatenate(Identity(), Momentum((momentum,), debias=adam))))
    v_inputs = with_context(ScaleFree(Square(), degree=2))
    optimizer = MomentRatioOptimizer(
        m_branch=Branch(
            m_inputs,
            GRUCell(m_inputs.n_features, hidden_size, key=k1),
            ExpScaleHead() if adam else SignExpHead(),
            direction=1 if adam else None,
        ),
        v_branch=Branch(v_inputs, GRUCell(v_inputs.n_features, hidden_size, key=k2), ExpHead()),
        step_size=step_size,
        eps=eps,
        stop_gradient_inputs=stop_gradient_inputs,
        max_step=max_step,
    )
    readouts = lambda o: [  # noqa: E731
        part
        for b in (o.m_branch, o.v_branch)
        for part in (b.cell.readout.weight, b.cell.readout.bias)
    ]
    return eqx.tree_at(readouts, optimizer, [jnp.zeros_like(x) for x in readouts(optimizer)])


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


def open_like(
    step_size: float = 1e-3,
    hidden_size: int = 16,
    decays: tuple[float, ...] = (0.1, 0.5, 0.9, 0.99, 0.999),
    *,
    noise_roles: tuple[str, ...] = ("actor",),
    stop_gradient_inputs: bool = True,
    key: PRNGKey | None = None,
) -> PerCoordinateOptimizer:
    """An OPEN-like optimizer (Goldie et al., 2024): a GRU over RL-aware inputs with a learned
    stochastic update.

    Per coordinate, the features are `[g, θ]` and momenta of `g` at `decays`, normalised per
    tensor by [`l2orl.RMSNormalize`][]; then the loop's facts from the update's context
    ([`l2orl.ContextFeatures`][]: training proportion, batch proportion, dormancy) and what
    the tensor is ([`l2orl.TensorFeatures`][]: layer proportion, actor/critic/shared, bias):
    15 inputs with the default decays. A GRU gives `(d, s, σ)` and

    `Δθ = -α·(d·exp(0.001·s) + σ·ξ)`, `ξ ~ N(0, 1)` on the tensors of `noise_roles` (the
    actor's; see [`l2orl.NoisyHead`][]).

    Without a context (plain optax code) the facts read 0 and no noise is drawn.
    1,603 meta-parameters at `hidden_size=16`.

    **Arguments:** `step_size` α (default 1e-3), `hidden_size` (default 16), `decays`
    (default `(0.1, 0.5, 0.9, 0.99, 0.999)`), `noise_roles` (default `("actor",)`),
    `stop_gradient_inputs` (default True), `key` (default `jax.random.key(0)`).
    """
    preprocessor = Concatenate(
        RMSNormalize(Concatenate(Identity(), ParamValue(), Momentum(decays))),
        ContextFeatures(),
        TensorFeatures(),
    )
    head = NoisyHead(DirectionMagnitudeHead(exp_mult=0.001), noise_roles)
    return PerCoordinateOptimizer(
        preprocessor,
        GRUCell(preprocessor.n_features, hidden_size, n_out=head.n_in, key=_key(key)),
        head,
        step_size,
        stop_gradient_inputs=stop_gradient_inputs,
    )


def velo_like(
    step_size: float = 1e-3,
    hidden_size: int = 16,
    bank_size: int = 8,
    mlp_width: int = 8,
    decays: tuple[float, ...] = (0.5, 0.9, 0.99),
    *,
    stop_gradient_inputs: bool = True,
    key: PRNGKey | None = None,
) -> HypernetworkOptimizer:
    """A VeLO-shaped hypernetwork optimizer (structure only, no VeLO weights): a per-tensor
    LSTM over the tensor's statistics mixes a bank of `bank_size` per-coordinate MLPs.

    The per-coordinate features are `[g, θ]` and momenta of `g` at `decays`; the LSTM reads
    their per-tensor log-RMS and the training proportion. The LSTM's readout starts at zero,
    so the untrained optimizer is per-tensor normalised gradient descent. 2,233
    meta-parameters with the defaults. See [`l2orl.HypernetworkOptimizer`][].

    **Arguments:** `step_size` α (default 1e-3), `hidden_size` (the LSTM's, default 16),
    `bank_size` (default 8), `mlp_width` (default 8), `decays` (default `(0.5, 0.9, 0.99)`),
    `stop_gradient_inputs` (default True), `key` (default `jax.random.key(0)`).
    """
    preprocessor = Concatenate(Identity(), ParamValue(), Momentum(decays))
    k_cell, k_bank = jax.random.split(_key(key))
    cell = LSTMCell(preprocessor.n_features + 1, hidden_size, bank_size + 1, key=k_cell)
    cell = eqx.tree_at(
        lambda c: (c.readout.weight, c.readout.bias),
        cell,
        (jnp.zeros_like(cell.readout.weight), jnp.zeros_like(cell.readout.bias)),
    )
    return HypernetworkOptimizer(
        preprocessor,
        cell,
        bank_size,
        mlp_width,
        step_size,
        stop_gradient_inputs=stop_gradient_inputs,
        key=k_bank,
    )


PRESETS: dict[str, Callable[..., AbstractLearnedOptimizer]] = {
    "Optim4RL": optim4rl,
    "Optim4RL-scale-free": optim4rl_scale_free,
    "Optim4RL-scale-free-context": functools.partial(
        optim4rl_scale_free, context=("training_proportion", "batch_proportion")
    ),
    "Optim4RL-scale-free-Adam": functools.partial(optim4rl_scale_free, direction="adam"),
    "L2LGD2": l2lgd2,
    "LinearOptim": linear_optim,
    "STAR": star,
    "OPEN-like": open_like,
    "VeLO-like": velo_like,
}
"""The presets by their published names (as configs and the command line spell them)."""
