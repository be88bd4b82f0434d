"""The learned optimizers of Lan et al. (2024), built from parts with the reference's sizes."""

import jax

from .._cells import GRUCell
from .._custom_types import PRNGKey
from .._heads import ExpHead, ExpScaleHead, GainBiasHead, SignExpHead
from .._preprocess import Identity, SignLog, Square
from ._branch import Branch
from ._moment_ratio import MomentRatioOptimizer
from ._per_coordinate import PerCoordinateOptimizer


def _key(key: PRNGKey | None) -> PRNGKey:
    return jax.random.key(0) if key is None else key


def Optim4RL(
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


def L2LGD2(
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


def LinearOptim(
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
